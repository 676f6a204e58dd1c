import pytest

from search.budget import BudgetError, parse_budget_ms


@pytest.mark.parametrize("text, ms", [("20ms", 20.0), ("0.02s", 20.0), ("20000us", 20.0), (" 7.5 ms ", 7.5),
                                      ("1e1ms", 10.0)])
def test_units_convert_to_milliseconds(text, ms):
    assert parse_budget_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text, match", [("20", "has no unit: write it with one, e.g. 20ms"),
                                         ("-5ms", "must be a positive latency"), ("0ms", "positive"),
                                         ("20 fortnights", "is not a latency"), ("", "is not a latency")])
def test_bad_budgets_say_why(text, match):
    with pytest.raises(BudgetError, match=match):
        parse_budget_ms(text)
