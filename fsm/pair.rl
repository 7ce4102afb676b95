# SPDX-License-Identifier: GPL-2.0-or-later
#
# pair.rl: the lifecycle of one protection pair on the data path, and
# nothing else.
#
# A pair is one protected disk replicated from the agent to the master
# target. It opens in created; the agent then picks where it goes from what
# it finds on disk: INITIAL (the replica was never seeded with a whole image
# of the disk), CLEAN (every captured write is in the write log: protected),
# DIRTY (the dirty bitmap has regions to resync), or LOG_FULL when the write
# log is already over its limit. A sync pass that ended and is durable at the
# master target is SYNC_DONE: after an initial sync the agent records that
# the replica is seeded (`seeded`), after a resync it only says so
# (`protect`); that difference is also what keeps Ragel's minimisation from
# merging the two states, whose events are otherwise the same. When the log overflows (a long outage) capture falls back to
# the dirty bitmap: bitmap_mode, left with DRAINED once the log has been
# shipped and the path is up, for a resync of the dirty regions only (or
# with INITIAL, if the replica was never seeded). INITIAL from a running
# state means the receiver lost writes the log no longer holds: a full sync
# again. PAUSE stops shipping from any running state; unpausing is the same
# pick as opening. The failover states of later issues (test_failover,
# failing_over, ...) will hang off protected.
#
# Events are the names of enum PairEvent in proto/fsm.proto (imported by
# pair_exec.rl); actions are one line each, in pair_exec.rl. An event that a
# state does not accept runs `refuse`: the machine stays where it was and
# the refusal is traced and logged. `names` never runs (no EOF is ever
# passed); it makes Ragel export every state label (pair_en_main_<state>)
# for traces and for the drawn chart (make fsm-dot). Ragel wants the first
# state labelled `start`; the pair calls it created.
%%{
  machine pair;

  main := (
    start: created: (
        PAIR_INITIAL    @sync       -> initial_sync
      | PAIR_CLEAN      @protect    -> protected
      | PAIR_DIRTY      @resync     -> resyncing
      | PAIR_LOG_FULL   @overflow   -> bitmap_mode
      | PAIR_PAUSE      @pause      -> paused
    ),
    initial_sync: (
        PAIR_INITIAL    @sync       -> initial_sync
      | PAIR_SYNC_DONE  @seeded     -> protected
      | PAIR_LOG_FULL   @overflow   -> bitmap_mode
      | PAIR_PAUSE      @pause      -> paused
    ),
    protected: (
        PAIR_INITIAL    @sync       -> initial_sync
      | PAIR_DIRTY      @resync     -> resyncing
      | PAIR_LOG_FULL   @overflow   -> bitmap_mode
      | PAIR_PAUSE      @pause      -> paused
    ),
    resyncing: (
        PAIR_INITIAL    @sync       -> initial_sync
      | PAIR_SYNC_DONE  @protect    -> protected
      | PAIR_LOG_FULL   @overflow   -> bitmap_mode
      | PAIR_PAUSE      @pause      -> paused
    ),
    bitmap_mode: (
        PAIR_INITIAL    @sync       -> initial_sync
      | PAIR_DRAINED    @resync     -> resyncing
      | PAIR_PAUSE      @pause      -> paused
    ),
    paused: (
        PAIR_INITIAL    @sync       -> initial_sync
      | PAIR_CLEAN      @protect    -> protected
      | PAIR_DIRTY      @resync     -> resyncing
      | PAIR_LOG_FULL   @overflow   -> bitmap_mode
    )
  ) $err(refuse) $/names;
}%%
