"""Who a counter calls next: the one rule, used by the engine's `next` and by the expected wait's play-forward.

Pure and tiny on purpose: it sees the counter's tiers, whether someone was forwarded to it, and each
topic's longest-waiting ticket's order (a number: lower came first), and nothing else, so the engine
(broker/engine.py, over the live state) and the estimate (broker/estimate.py, over its copy of the
queues) cannot drift apart. Imports nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

FORWARDED = ""  # "call the first ticket forwarded to this counter" (no topic id is empty: config checks them)


def next_source(tiers: Sequence[Sequence[str]], oldest: Callable[[str], int | None], *,
                forwarded: bool) -> str | None:
    """Where the next call comes from: FORWARDED when someone was forwarded to this counter; else the topic,
    in the first tier with anyone waiting, whose longest waiter came first (`oldest(topic)`: that ticket's
    order, None when nobody waits; ties go to the topic id that sorts first); None when nobody waits.

    Topics in a tier are compared by who has waited longest in each, so a priority ticket moves ahead
    only inside its own topic and never pushes its topic back.
    """
    if forwarded:
        return FORWARDED
    for tier in tiers:  # the estimate calls this for every visitor it plays forward: no tuples on the way
        best_order, best_topic = 0, ""
        for topic in tier:
            order = oldest(topic)
            if order is not None and (not best_topic or order < best_order
                                      or (order == best_order and topic < best_topic)):
                best_order, best_topic = order, topic
        if best_topic:
            return best_topic
    return None
