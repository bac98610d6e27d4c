"""IRS limit files: the figures of docs/design/domain.md, and a strict loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.irs_figures import FIGURES
from plancheck.errors import InputError, LimitYearMissing
from plancheck.rulebook.limits import load_limits


def cents(dollars):
    return None if dollars is None else dollars * 100


@pytest.mark.parametrize("year", sorted(FIGURES))
def test_figures_match_the_irs_notices(limits, year):
    """Every figure equals the IRS figure for its year."""
    y = limits.for_year(year)
    assert (y.deferral_402g, y.catch_up, y.catch_up_60_63, y.annual_additions_415c, y.compensation_401a17,
            y.hce_414q, y.roth_catch_up_wages) == tuple(map(cents, FIGURES[year]))


def test_2024_deferral_limit_is_not_the_popular_23500(limits):
    """$23,500 is the 2025 figure; 2024 is $23,000 (a common error in articles)."""
    assert limits.for_year(2024).deferral_402g == 2_300_000


def test_every_value_names_its_notice(limits):
    """Each year's figure carries its own citation."""
    for year in limits.years:
        for citation in limits.for_year(year).citations.values():
            assert "Notice" in citation or "SECURE" in citation


def test_hce_uses_the_look_back_year(limits):
    """414(q)(1)(B): the 2023 check uses the 2022 threshold of $135,000."""
    assert limits.for_year(2023).hce_414q_prior_year == 13_500_000
    assert limits.for_year(2026).hce_414q_prior_year == 16_000_000


@pytest.mark.parametrize("year", [2022, 2027])
def test_a_year_without_limits_is_a_clear_error(limits, year):
    """Checking a year outside rules/limits names the covered years."""
    with pytest.raises(LimitYearMissing, match=f"no IRS limits for {year}: rules/limits covers 2023-2026"):
        limits.for_year(year)


@pytest.fixture
def limit_copy(tmp_path: Path, root: Path) -> Path:
    target = tmp_path / "limits"
    shutil.copytree(root / "rules" / "limits", target)
    shutil.copytree(root / "rules" / "parameters", tmp_path / "parameters")
    return target


def test_a_typo_in_a_key_is_a_load_error_with_file_and_line(limit_copy):
    """An unknown key is rejected, naming the file, line and key."""
    path = limit_copy / "annual_additions_limit.yaml"
    path.write_text(path.read_text().replace("  2024: {amount: 69000,", "  2024: {amont: 69000,"))
    with pytest.raises(InputError) as info:
        load_limits(limit_copy)
    text = str(info.value)
    assert "annual_additions_limit.yaml:" in text and "values.2024.amont" in text and "unknown key" in text


def test_a_missing_year_is_a_load_error(limit_copy):
    """A year missing from one family is reported, not silently skipped."""
    path = limit_copy / "compensation_limit.yaml"
    path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.startswith("  2025:")))
    with pytest.raises(InputError, match=r"compensation_limit.yaml: values.2025: year 2025 is missing"):
        load_limits(limit_copy)


def test_a_missing_family_is_a_load_error(limit_copy):
    """Deleting a limit file is an error that names it."""
    (limit_copy / "catch_up_limit.yaml").unlink()
    with pytest.raises(InputError, match="catch_up_limit.yaml: limit file is missing"):
        load_limits(limit_copy)


def test_a_null_without_a_note_is_rejected(limit_copy):
    """A limit not in force must say why."""
    path = limit_copy / "catch_up_limit_age_60_63.yaml"
    path.write_text(path.read_text().replace(
        'note: "414(v)(2)(E) applies to taxable years beginning after December 31, 2024"}', "}", 1))
    with pytest.raises(InputError, match="needs a note"):
        load_limits(limit_copy)


def test_duplicate_keys_are_rejected(limit_copy):
    """A year written twice is an error, not last-one-wins."""
    path = limit_copy / "elective_deferral_limit.yaml"
    path.write_text(path.read_text() + "  2024: {amount: 99999, citation: IRS Notice 2023-75}\n")
    with pytest.raises(InputError, match="duplicate key 2024"):
        load_limits(limit_copy)
