"""The dashboard page: one template; all data comes from /api by the page's JS modules."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template

pages = Blueprint("pages", __name__)


@pages.get("/")
def index() -> Any:
    svc = current_app.extensions["dashboard_service"]
    return render_template(
        "index.html",
        token=current_app.config["DASHBOARD_TOKEN"],
        meta=svc.meta(),
        # what a paper reset starts over with (the reset button's confirm dialog says it)
        paper_balance=f"{svc.settings.paper_balance:,.2f}",
    )
