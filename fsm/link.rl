# SPDX-License-Identifier: GPL-2.0-or-later
#
# link.rl: the lifecycle of one link between two nodes, and nothing else.
#
# An outbound link (rt_link_connect) starts with START and reconnects forever:
# every failure goes to backoff, whose delay grows exponentially with jitter,
# then RETRY connects again. An accepted link (rt_listener_new) starts with
# ACCEPTED in handshake and is closed for good when lost: the peer reconnects.
# Whether a loss is FAIL (outbound) or CLOSE (accepted) is decided by the C
# that raises it; the detail of the transition says why (runtime/rt_link.c).
#
# Events are the names of enum LinkEvent in proto/fsm.proto (imported by
# link_exec.rl); actions are one line each, in link_exec.rl. An event that a
# state does not accept runs `refuse`: the machine stays where it was and the
# refusal is traced and logged. `names` never runs (no EOF is ever passed); it
# makes Ragel export every state label (link_en_main_<state>) for traces and
# for the drawn chart (make fsm-dot). Ragel wants the first state labelled
# `start`; the link calls it init.
%%{
  machine link;

  main := (
    start: init: (
        LINK_START      @connect    -> connecting
      | LINK_ACCEPTED   @accept     -> handshake
      | LINK_CLOSE      @close      -> closed
    ),
    connecting: (
        LINK_CONNECTED  @handshake  -> handshake
      | LINK_FAIL       @retry      -> backoff
      | LINK_CLOSE      @close      -> closed
    ),
    handshake: (
        LINK_TLS_OK     @hello      -> hello
      | LINK_FAIL       @retry      -> backoff
      | LINK_CLOSE      @close      -> closed
    ),
    hello: (
        LINK_HELLO_OK   @up         -> up
      | LINK_FAIL       @retry      -> backoff
      | LINK_CLOSE      @close      -> closed
    ),
    up: (
        LINK_FAIL       @retry      -> backoff
      | LINK_CLOSE      @close      -> closed
    ),
    backoff: (
        LINK_RETRY      @connect    -> connecting
      | LINK_CLOSE      @close      -> closed
    ),
    closed: ( zlen )
  ) $err(refuse) $/names;
}%%
