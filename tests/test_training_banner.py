"""A training database says so on every page (issue 14 item 5): the dashboard's network pages
and its index carry the banner, parsed back by Python's HTML parser; a real database's do not."""

from __future__ import annotations

from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from flows.site import write_site
from tests import support_accounts
from tests.factories import reference_data


class _Banner(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inside, self.text = False, ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "p" and ("class", "training-banner") in attrs:
            self.inside = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.text += data


def _banners(out: Path) -> list[str]:
    found = []
    for page in [out / "index.html", *sorted(out.glob("*/index.html"))]:
        parser = _Banner()
        parser.feed(page.read_text(encoding="utf-8"))
        found.append(" ".join(parser.text.split()))
    return found


@pytest.mark.parametrize("training", [True, False])
def test_every_dashboard_page_of_a_training_database_says_so(db: Engine, tmp_path: Path, training: bool) -> None:
    if training:
        support_accounts.make_training(db)
    with Session(db) as s:
        reference_data(s)
        s.commit()
        write_site(s, date(2026, 12, 11), tmp_path, [("WMTN", "West Midlands"), ("CMMTN", "Cheshire & Mersey")])
    banners = _banners(tmp_path)
    assert len(banners) == 3  # the index and two networks' pages
    if training:
        assert all(b.startswith("Training database:") and "never sent" in b for b in banners), banners
    else:
        assert banners == ["", "", ""]
