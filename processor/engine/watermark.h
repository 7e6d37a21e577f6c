// Watermark: how far event time has surely progressed on one partition.
// It trails the highest event time seen by the allowed lateness; when the
// partition has been idle for `idle_timeout` of wall time, it advances with
// the wall clock so timers (absence rules) still fire on a quiet partition.
// Idle means at its end: a partition whose consumer is behind (a backlog, a
// slow shard) is not idle however long since its last event, so events
// waiting to be read never turn late (SetAtEnd; without it, a partition
// counts as at its end, as offline runs and tests want). Idle also means
// heard from: where the daemon knows when the partition's broker last said
// it had nothing more (HeardUntil), the idle advance stops there, so a
// broker that stops answering is not taken for a quiet partition. It never
// moves backwards. Owned by the shard that owns the partition.
#pragma once

#include <algorithm>
#include <limits>

#include "common/time.h"

namespace cxpulse {

class Watermark {
 public:
  static constexpr Micros kNone = std::numeric_limits<Micros>::min() / 2;

  Watermark(Micros allowed_lateness, Micros idle_timeout)
      : lateness_(allowed_lateness), idle_timeout_(idle_timeout) {}

  // An event is late when it is older than the watermark: every timer up to
  // there may already have fired, so it can no longer be counted in order.
  bool IsLate(Micros event_time, Micros wall_now) const { return event_time < Current(wall_now); }

  void Observe(Micros event_time, Micros wall_now) {
    floor_ = Current(wall_now);
    max_event_time_ = std::max(max_event_time_, event_time);
    last_event_wall_ = wall_now;
  }

  Micros Current(Micros wall_now) const {
    if (max_event_time_ == kNone) return kNone;
    Micros wm = max_event_time_ - lateness_;
    const Micros idle = (bounded_ ? std::min(wall_now, heard_until_) : wall_now) - last_event_wall_;
    if (at_end_ && idle >= idle_timeout_) wm += idle;
    return std::max(wm, floor_);
  }

  // The consumer reached the partition's end (true), or read a record (false).
  // Leaving the end keeps what the idle clock had reached. Reaching the end
  // says nothing of when the broker had nothing more: the end is read when
  // the shard gets to it, which may be long after it was fetched (a shard
  // held up in a commit), with records fetched since waiting behind it. So
  // it moves no bound; only HeardUntil does.
  void SetAtEnd(bool at_end, Micros wall_now) {
    if (at_end_ && !at_end) floor_ = std::max(floor_, Current(wall_now));
    at_end_ = at_end;
  }

  // The partition's broker was last heard saying it had nothing more than
  // what was read at wall time `heard_at`: from the first call on, a
  // partition at its end idles forward only up to the latest such time.
  // Unbounded until then.
  void HeardUntil(Micros heard_at, Micros wall_now) {
    if (!bounded_) floor_ = std::max(floor_, Current(wall_now));  // never backwards
    heard_until_ = bounded_ ? std::max(heard_until_, heard_at) : heard_at;
    bounded_ = true;
  }

  // Moves the watermark forward to at least `to` (end of a replay, a test's
  // "advance"): every timer before it may fire.
  void AdvanceTo(Micros to, Micros wall_now) {
    floor_ = std::max(Current(wall_now), to);
    if (max_event_time_ == kNone) max_event_time_ = to + lateness_;
  }

  Micros max_event_time() const { return max_event_time_; }
  // The watermark as of the last event, before any idle advance since: the
  // least it can be from now on, whatever the wall clock does.
  Micros Settled() const { return max_event_time_ == kNone ? kNone : std::max(max_event_time_ - lateness_, floor_); }

  // Takes up a checkpoint's max_event_time() and a floor (Settled(), or past
  // it where the wall clock had moved the watermark on), before the
  // partition's first event. The idle clock starts again at `wall_now` (the
  // wall time of a checkpoint means nothing to a process restoring it), and
  // from the floor: a watermark that had idled forward goes on from where it
  // stood, as if an event at floor + lateness had just come.
  void Restore(Micros max_event_time, Micros floor, Micros wall_now) {
    max_event_time_ = max_event_time == kNone ? kNone : std::max(max_event_time, floor + lateness_);
    floor_ = floor;
    last_event_wall_ = wall_now;
  }

 private:
  Micros lateness_;
  Micros idle_timeout_;
  Micros max_event_time_ = kNone;
  Micros last_event_wall_ = 0;
  Micros floor_ = kNone;
  bool at_end_ = true;
  bool bounded_ = false;
  Micros heard_until_ = 0;
};

}  // namespace cxpulse
