"""The durable-rules adapter against each trap recorded in docs/design/durable-rules.md."""

from __future__ import annotations

import threading

import pytest

from plancheck.engine._durable import DurableRuleset, EngineError

BIG = {"$gt": {"amount": {"$m": "limit"}}}
POSITIVE = {"$gt": {"amount": 0}}


def test_two_rules_matching_the_same_fact_both_fire():
    """Facts, not events: every matching rule fires, not only the first."""
    rs = DurableRuleset("t", {"over": BIG, "positive": POSITIVE}, ["amount", "limit"])
    assert rs.evaluate([[5, 1]]) == [(0, "over"), (0, "positive")]


def test_a_fact_matching_nothing_is_no_error():
    """A record that matches no rule gives no firing and raises nothing."""
    rs = DurableRuleset("t", {"over": BIG}, ["amount", "limit"])
    assert rs.evaluate([[1, 5]]) == []


def test_mixed_batch_keeps_the_matching_records():
    """In one batch, unmatched records do not hide the matched records' firings."""
    rs = DurableRuleset("t", {"over": BIG}, ["amount", "limit"])
    records = [[i, 50] for i in range(100)]
    assert [i for i, _ in rs.evaluate(records)] == list(range(51, 100))


def test_nothing_is_left_in_the_engine():
    """Every asserted fact is retracted before evaluate returns."""
    rs = DurableRuleset("t", {"over": BIG, "positive": POSITIVE}, ["amount", "limit"])
    rs.evaluate([[i, 3] for i in range(2500)])
    assert rs.leftover_facts() == []


def test_identical_records_are_all_evaluated():
    """Facts are identified by content in durable-rules; identical records still each fire."""
    rs = DurableRuleset("t", {"over": BIG}, ["amount", "limit"])
    assert rs.evaluate([[5, 1], [5, 1], [5, 1]]) == [(0, "over"), (1, "over"), (2, "over")]
    assert rs.evaluate([[5, 1]]) == [(0, "over")]


def test_or_fires_once_per_fact_and_rule():
    """`$or` fires once per satisfied branch in durable-rules; the adapter de-duplicates."""
    rs = DurableRuleset("t", {"either": {"$or": [BIG, POSITIVE]}}, ["amount", "limit"])
    assert rs.evaluate([[5, 1]]) == [(0, "either")]


def test_strings_are_refused_not_compared():
    """'50' > 100 would fire lexicographically; the adapter refuses non-integers."""
    rs = DurableRuleset("t", {"over": BIG}, ["amount", "limit"])
    with pytest.raises(EngineError, match="must be an int"):
        rs.evaluate([["50", 100]])
    with pytest.raises(EngineError, match="must be an int"):
        rs.evaluate([[0.5, 0]])
    assert rs.leftover_facts() == []


def test_a_malformed_pattern_names_the_ruleset():
    """durable-rules' bare 'error code: 202' is wrapped with the ruleset's name."""
    with pytest.raises(EngineError, match="refused ruleset 'broken'"):
        DurableRuleset("broken", {"bad": {"$nosuch": {"amount": 1}}}, ["amount"])


def test_many_rulesets_in_one_process():
    """Rulesets get unique names, so building engines repeatedly never collides."""
    for _ in range(50):
        rs = DurableRuleset("t", {"over": BIG}, ["amount", "limit"])
        assert rs.evaluate([[2, 1]]) == [(0, "over")]
        rs.close()


def test_concurrent_callers_lose_no_firings():
    """Two threads on one ruleset are serialised; every firing is returned to its caller."""
    rs = DurableRuleset("t", {"over": BIG}, ["amount", "limit"])
    results: list[int] = []

    def work() -> None:
        results.append(len(rs.evaluate([[i, 0] for i in range(1, 3001)])))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [3000, 3000]
    assert rs.leftover_facts() == []


def test_a_record_of_some_fields_decides_the_rules_that_read_only_them():
    """Asked about one rule with only its facts, the engine decides it exactly as on the whole record, on both
    sides of its boundary, and leaves nothing behind."""
    rs = DurableRuleset("t", {"over": BIG, "positive": POSITIVE, "other": {"$gt": {"other": 0}}},
                        ["amount", "limit", "other"])
    whole = [[limit + delta, limit, 7] for limit in (0, 100) for delta in (-1, 0, 1)]
    slim = [[amount, limit] for amount, limit, _ in whole]
    decided = lambda firings: sorted(i for i, rule in firings if rule == "over")  # noqa: E731
    assert decided(rs.evaluate(slim, ["amount", "limit"])) == decided(rs.evaluate(whole)) == [2, 5]
    assert rs.leftover_facts() == []


def test_fields_the_rules_do_not_read_are_refused():
    rs = DurableRuleset("t", {"over": BIG}, ["amount", "limit"])
    with pytest.raises(EngineError, match="unknown fields"):
        rs.evaluate([[1, 2]], ["amount", "nonsense"])
    with pytest.raises(EngineError, match="expected 2 values"):
        rs.evaluate([[1]], ["amount", "limit"])
