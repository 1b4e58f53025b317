"""Plain-text views for the command line, laid out for an 80-column console
with Chinese characters counted at their double width (rich does the counting).
Untrusted text is printed without markup interpretation."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from daiban.i18n import _
from daiban.node.catalog import Item, level_label
from daiban.node.lifecycle import kind_label, status_label

WIDTH = 80


def _console(buffer: io.StringIO) -> Any:
    from rich.console import Console

    return Console(
        file=buffer,
        width=WIDTH,
        color_system=None,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=False,
    )


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, shrink: int = 1) -> str:
    """A table at 80 columns. Only column ``shrink`` (the item name) gives up
    width when the screen is too narrow; codes and tracking numbers never do."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    widths = [max([_cells(column), *(_cells(str(r[i])) for r in rows)]) for i, column in enumerate(columns)]
    # Three cells between columns; the shrinking column gets what is left of
    # 80 (rich, left to itself, may squeeze the last column instead).
    room = WIDTH - 3 * (len(columns) - 1) - sum(w for i, w in enumerate(widths) if i != shrink)
    for index, column in enumerate(columns):
        if index == shrink:
            width = max(4, min(widths[index], room))
            table.add_column(column, overflow="ellipsis", no_wrap=True, width=width)
        else:
            table.add_column(column, no_wrap=True, width=widths[index])
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    buffer = io.StringIO()
    _console(buffer).print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def _cells(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


SYSTEM_ACTORS = ("server", "", "-")


def value_text(value: Any) -> str:
    """A form value in people's words: yes/no for a tick box (not True/False),
    an amount without a stray ``.0`` (420, while 420.5 stays 420.5), a list
    joined the Chinese way."""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, list | tuple):
        return _("、").join(value_text(v) for v in value)
    return "" if value is None else str(value)


def actor_text(actor: str) -> str:
    """Who recorded an event: the person logged in, or the office's own
    system (a sync server records what arrives; never shown as "server")."""
    return _("office system") if actor in SYSTEM_ACTORS else actor


def place_text(names: Mapping[str, str], code: str, *, with_code: bool = False) -> str:
    """An office or agency point by its name (its code too on a detail, and
    the code alone where no name is known)."""
    name = names.get(code)
    if not name:
        return code
    return _("{name} ({code})").format(name=name, code=code) if with_code else name


def who_text(event: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """The actor of a history line, and where: 刘窗口（南定镇便民服务中心）."""
    return _("{who} ({place})").format(
        who=actor_text(str(event.get("actor") or "")), place=place_text(names, str(event["origin"]))
    )


def due_text(view: Mapping[str, Any], *, short: bool = False) -> str:
    state = view.get("due_state")
    if state == "known":
        return str(view["due"])
    if state == "provisional":
        # Counted on an estimate of a year whose official calendar is not
        # published yet: said every time it is shown.
        if short:
            return _("~{date}").format(date=view["due"])
        return _("{date} (estimated: the {year} calendar is not published yet)").format(
            date=view["due"], year=view.get("due_missing_year") or "?"
        )
    if state == "unknown":
        if short:
            return _("unknown")
        return _("unknown (no {year} calendar)").format(year=view.get("due_missing_year") or "?")
    return "-"


def init_summary(info: Mapping[str, Any]) -> str:
    from daiban.node.divisions import role_name

    return _(
        "Created node {code} {name} ({role}) in {home}.\nCatalog version {version}: {items} items ({title})."
    ).format(
        code=info["code"],
        name=info["name"],
        role=role_name(info["role"]),
        home=info["home"],
        version=info["catalog"]["version"],
        items=info["items"],
        title=info["catalog"]["title"],
    )


def filed_summary(filed: Any) -> str:
    lines = [
        _("Filed: {name} ({code}), office {office}, status {status}.").format(
            name=filed.item.name, code=filed.item.code, office=filed.office, status=status_label(filed.status)
        ),
    ]
    if filed.owed:
        lines.append(_("Owed under 容缺受理: {materials}").format(materials=_("、").join(filed.owed)))
    return "\n".join(lines)


def application_table(rows: Sequence[Mapping[str, Any]], *, total: int, node: str) -> str:
    if not rows:
        return _("No applications at {node}.").format(node=node)
    body = [
        [
            r["tracking"],
            r["item_name"],
            r["applicant"]["name"],
            status_label(r["status"]) + (" !" if r.get("sync_problem") or r.get("late") else ""),
            due_text(r, short=True),
        ]
        for r in rows
    ]
    text = _table([_("tracking"), _("item"), _("applicant"), _("status"), _("due")], body)
    if total > len(rows):
        text += "\n" + _("Showing the newest {n} of {total}; use --limit or --status to see more.").format(
            n=len(rows), total=total
        )
    problems = [r for r in rows if r.get("sync_problem")]
    if problems:
        text += "\n" + _("! the parent refused {n} of these; `daiban show TRACKING` says why.").format(
            n=len(problems)
        )
    text += "".join("\n" + line for line in late_summary(rows))
    return text


def late_summary(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The lines that count what is late among ``rows`` (views with ``late``)."""
    unanswered = sum(1 for r in rows if (r.get("late") or {}).get("kind") == "unanswered")
    overdue = sum(1 for r in rows if (r.get("late") or {}).get("kind") == "overdue")
    lines = []
    if unanswered:
        lines.append(
            _("! {n} received and not answered for 4 working days or more (the limit is 5).").format(
                n=unanswered
            )
        )
    if overdue:
        lines.append(_("! {n} past their due date.").format(n=overdue))
    return lines


def correction_label(key: str) -> str:
    """What a correction changed, named for people: name, ID number, phone,
    or a form field (by its key; the item's label where the caller has it)."""
    labels = {"name": _("name"), "id_number": _("ID number"), "phone": _("phone")}
    return labels.get(key, key.removeprefix("fields."))


def correction_lines(corrections: Sequence[Mapping[str, Any]]) -> list[str]:
    """At the office, which opens both: each correction, old value → new."""
    lines = []
    for changed in corrections:
        parts = [
            f"{correction_label(k)} {value_text(v['from'])} → {value_text(v['to'])}"
            for k, v in changed.items()
        ]
        lines.append(_("Corrected: {changes}").format(changes=_("; ").join(parts)))
    return lines


def late_lines(late: Mapping[str, Any]) -> list[str]:
    """What timeliness says of an application, in lines that fit 80 columns."""
    n = int(late["working_days"])
    if late["kind"] == "unanswered":
        return [
            _("! Received {n} working days ago and not answered (the limit is 5):").format(n=n),
            _("  ask for every supplement at once or decide, or it counts as accepted (Art. 32)."),
        ]
    if n == 0:
        return [_("! Past its due date.")]
    return [_("! Past its due date by {n} working days.").format(n=n)]


def attention_lines(view: Mapping[str, Any]) -> list[str]:
    """What an application still waits for: a refusal by the parent, a time
    limit running out or run out, the materials owed (容缺) and those asked
    for at once (一次性告知)."""
    lines = []
    if view.get("sync_problem"):
        lines.append(_("Refused by the parent: {reason}").format(reason=view["sync_problem"]))
    if view.get("late"):
        lines.extend(late_lines(view["late"]))
    if view.get("owed"):
        lines.append(_("Owed (容缺): {materials}").format(materials=_("、").join(view["owed"])))
    if view.get("missing"):
        lines.append(
            _("To supplement (一次性告知): {materials}").format(materials=_("、").join(view["missing"]))
        )
    return lines


def place_lines(view: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    """Where an application is handled, filed and from: by name, with the code."""
    lines = [
        _("Office: {office}").format(office=place_text(names, str(view["office"]), with_code=True)),
        _("Filed by: {origin}").format(origin=place_text(names, str(view["origin"]), with_code=True)),
    ]
    if view["region"] != view["origin"]:  # the resident lives elsewhere than where it was filed
        lines.append(
            _("Resident of: {region}").format(region=place_text(names, str(view["region"]), with_code=True))
        )
    return lines


def applicant_line(view: Mapping[str, Any]) -> str:
    """The applicant: in full where this office opened the personal data,
    masked everywhere else."""
    shown = view.get("personal") or view["applicant"]
    return _("Applicant: {name}  {id_number}  {phone}").format(
        name=shown["name"], id_number=shown["id_number"], phone=shown["phone"]
    )


def application_detail(
    view: Mapping[str, Any], names: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None
) -> str:
    """`daiban show`: offices by name (with the code), values in people's
    words, the form's fields by their labels (and their --field keys)."""
    names, labels = names or {}, labels or {}
    lines = [
        _("Tracking: {tracking}").format(tracking=view["tracking"]),
        _("Item: {name} ({code})").format(name=view["item_name"], code=view["item"]),
        _("Status: {status}").format(status=status_label(view["status"])),
        applicant_line(view),
        *place_lines(view, names),
        _("Filed at: {at}").format(at=view["filed_at"]),
        _("Due: {due}").format(due=due_text(view)),
    ]
    lines.extend(attention_lines(view))
    lines.extend(correction_lines(view.get("corrections") or []))
    if view.get("delivery"):
        d = view["delivery"]
        lines.append(
            _("Delivery: {method} {number}")
            .format(
                method=_("post") if d.get("method") == "post" else _("pickup"),
                number=d.get("post_tracking") or "",
            )
            .rstrip()
        )
        if d.get("address") and not (view.get("personal") or {}).get("address"):
            lines.append(_("Delivery address: {address}").format(address=d["address"]))
    if view.get("evaluation"):
        lines.append(_("Evaluation: {level}").format(level=score_label(int(view["evaluation"]))))
    personal = view.get("personal")
    if personal:
        for key, value in (personal.get("fields") or {}).items():
            label = labels.get(key, key)
            shown = key if label == key else _("{label} ({key})").format(label=label, key=key)
            lines.append(f"  {shown}: {value_text(value)}")
        guardian = personal.get("guardian")
        if guardian:
            lines.append(
                _("Guardian: {name}  {id_number}  {relation}").format(
                    name=guardian.get("name", ""),
                    id_number=guardian.get("id_number", ""),
                    relation=guardian.get("relation", ""),
                )
            )
        if personal.get("address"):
            lines.append(_("Delivery address: {address}").format(address=personal["address"]))
    elif view.get("personal_problem"):
        lines.append(view["personal_problem"])
    lines.append(_("History:"))
    for e in view.get("history", []):
        detail = event_detail(e["kind"], e["body"])
        lines.append(
            f"  {e['at']}  {kind_label(e['kind'])}  {who_text(e, names)}" + (f"  {detail}" if detail else "")
        )
    return "\n".join(lines)


def event_detail(kind: str, body: Mapping[str, Any]) -> str:
    if kind == "supplement_requested":
        return _("missing: {materials}").format(materials=_("、").join(body.get("missing", [])))
    if kind == "supplemented":
        return _("supplied: {materials}").format(materials=_("、").join(body.get("materials", [])))
    if kind == "rejected":
        return _("reason: {reason}").format(reason=body.get("reason", ""))
    if kind == "accepted" and body.get("owed"):
        return _("owed: {materials}").format(materials=_("、").join(body["owed"]))
    if kind == "corrected":
        names = _("、").join(correction_label(str(c)) for c in body.get("changed") or [])
        return _("{changed}: {reason}").format(changed=names, reason=body.get("reason", ""))
    if kind == "evaluated":
        score = body.get("score")
        level = score_label(score) if isinstance(score, int) and 1 <= score <= 5 else str(score)
        return (
            _("{level}: {reason}").format(level=level, reason=body["comment"])
            if body.get("comment")
            else level
        )
    if kind == "completed":
        d = body.get("delivery") or {}
        return (
            _("post {number}").format(number=d.get("post_tracking"))
            if d.get("method") == "post"
            else _("pickup")
        )
    return str(body.get("note") or "")


def change_summary(view: Mapping[str, Any], done: str) -> str:
    line = _("{tracking}: now {status}.").format(
        tracking=view["tracking"], status=status_label(view["status"])
    )
    if done == "told":
        line += " " + _("The resident has been told; it leaves the to-do list.")
    if done == "correct":
        line += " " + _("Corrected; the correction goes to the office at the next sync.")
    if view["status"] == "accepted" and done == "accept":
        line += " " + _("Due: {due}.").format(due=due_text(view))
    if view.get("owed"):
        line += " " + _("Owed (容缺): {materials}").format(materials=_("、").join(view["owed"]))
    if view.get("missing"):
        line += " " + _("To supplement (一次性告知): {materials}").format(
            materials=_("、").join(view["missing"])
        )
    return line


def catalog_table(items: Sequence[Item], info: Mapping[str, Any], query: str) -> str:
    if not items:
        return _("No item matches {query!r}.").format(query=query)
    body = [
        [
            i.code,
            i.name,
            level_label(i.level),
            _("{n} days").format(n=i.time_limit_days) if i.time_limit_days else _("on the spot"),
            str(i.trips),
        ]
        for i in items
    ]
    header = _("Catalog version {version} ({title})").format(version=info["version"], title=info["title"])
    return header + "\n" + _table([_("code"), _("item"), _("level"), _("time limit"), _("trips")], body)


def catalog_detail(item: Item) -> str:
    lines = [
        f"{item.code}  {item.name}",
        _("Level: {level}   Department: {department}").format(
            level=level_label(item.level), department=item.department
        ),
        _("Time limit: {days} working days   Trips: {trips}   Fee: {fee} yuan").format(
            days=item.time_limit_days, trips=item.trips, fee=f"{item.fee:g}"
        ),
    ]
    if item.aliases:
        names = _("、").join(alias for alias, _letters in item.aliases)
        lines.append(_("Also called: {names}").format(names=names))
    if item.guide:
        lines.append(item.guide)
    if item.conditions:
        from daiban.node.conditions import describe

        lines.append(_("Conditions checked at filing:"))
        lines.extend("  - " + line for line in describe(item.conditions))
    lines.append(_("Materials:"))
    for m in item.materials:
        lines.append("  - " + m["name"] + (("  " + _("(may be owed, 容缺)")) if m.get("owable") else ""))
    props = item.fields.get("properties", {})
    required = set(item.fields.get("required", []))
    if props:
        lines.append(_("Fields (--field KEY=VALUE):"))
        for key, spec in props.items():
            extra = " / ".join(str(c) for c in spec.get("enum", []))
            mark = _("required") if key in required else _("optional")
            lines.append(f"  {key}  {spec.get('title', '')}  [{mark}]" + (f"  {extra}" if extra else ""))
    return "\n".join(lines)


def agent_table(rows: Sequence[Mapping[str, Any]], *, staff: bool = False) -> str:
    """Who logs in here: a village's agents (代办员), an office's staff (工作人员)."""
    body = [
        [
            str(r["name"]),
            str(r["created_at"] or "")[:16],
            str(r["last_login_at"] or "-")[:16],
            _("locked") if r.get("locked_until") else "",
        ]
        for r in rows
    ]
    who = _("staff member") if staff else _("agent")
    return _table([who, _("added"), _("last login"), ""], body, shrink=0)


# -- reports ------------------------------------------------------------------

TREND_ROWS = 24
BAR_WIDTH = 24


def score_label(score: int) -> str:
    return {
        5: _("very satisfied"),
        4: _("satisfied"),
        3: _("fairly satisfied"),
        2: _("dissatisfied"),
        1: _("very dissatisfied"),
    }[score]


def _fill(parts: Sequence[str], indent: str = "  ") -> list[str]:
    """Parts two cells apart, on as many indented lines of 80 cells as they need."""
    lines: list[str] = []
    for part in parts:
        if lines and _cells(lines[-1] + "  " + part) <= WIDTH:
            lines[-1] += "  " + part
        else:
            lines.append(indent + part)
    return lines


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def calendar_missing_lines(year: int) -> list[str]:
    """Said plainly where deadlines are watched (report, dashboard): due dates
    in a year without its official calendar are estimates."""
    return [
        _("! The official working-day calendar for {year} is not published yet:").format(year=year),
        _("  due dates in {year} are estimates (预计). The city publishes it with the catalog.").format(
            year=year
        ),
    ]


def report_text(report: Mapping[str, Any]) -> str:
    """A report for the terminal: totals, the groups (with --by), and a bar
    chart of the trend."""
    total = report["total"]
    period = period_span(report["from"], report["to"])
    lines = [
        _("Report for {code} {name}, {period}").format(
            code=report["node"], name=report["name"], period=period
        ),
        _("Filed {filed}   completed {completed}   on time {rate} ({on_time} of {known})").format(
            filed=total["filed"],
            completed=total["completed"],
            rate=_percent(total["on_time_rate"]),
            on_time=total["on_time"],
            known=total["on_time_known"],
        ),
        _("Average working days from acceptance to completion: {days}").format(
            days=_number(total["avg_working_days"])
        ),
        _("Filed by proxy at village points: {share} ({proxy} of {filed})").format(
            share=_percent(total["proxy_share"]), proxy=total["proxy"], filed=total["filed"]
        ),
        _("Evaluations: {n}, average {avg}").format(n=total["evaluated"], avg=_number(total["avg_score"])),
    ]
    late = report.get("late") or {}
    if any(late.values()):
        lines.append(
            _("! Open now: unanswered for 4+ working days {unanswered}, past due {overdue}").format(
                unanswered=late.get("unanswered", 0), overdue=late.get("overdue", 0)
            )
        )
    if report.get("calendar_missing"):
        lines[1:1] = calendar_missing_lines(int(report["calendar_missing"]))
    lines.extend(_fill([f"{score_label(int(s))} {n}" for s, n in total["evaluations"].items()]))
    if report["by"]:
        lines.append("")
        if report["groups"]:
            lines.append(_report_groups(report))
        else:
            lines.append(_("Nothing in this period."))
    if "stale_children" in report:  # only a node's own report has its children
        lines += ["", _report_stale(report)]
    further = _report_stale_below(report) if "stale_nodes" in report else None
    if further:
        lines += ["", further]
    chart = _trend_chart(report["trend"])
    if chart:
        lines += ["", chart]
    return "\n".join(lines)


def _report_groups(report: Mapping[str, Any]) -> str:
    heading = {
        "district": _("district"),
        "town": _("town"),
        "village": _("village"),
        "item": _("item"),
    }[report["by"]]
    rows = [
        [
            f"{g['key']} {g['name']}".rstrip() if g["key"] else _("(coarser)"),
            str(g["filed"]),
            str(g["completed"]),
            _percent(g["on_time_rate"]),
            _number(g["avg_working_days"]),
            _percent(g["proxy_share"]),
            _number(g["avg_score"]),
        ]
        for g in report["groups"]
    ]
    columns = [
        heading,
        _("new"),
        _("done"),
        _("on time"),
        _("days"),
        _("proxy"),
        _("score"),
    ]
    # Only the first column (code and name) gives up width on a narrow screen:
    # cut to what the figures leave of 80 columns (3 between columns).
    from rich.text import Text

    figures = sum(max(_cells(c), *(_cells(r[i]) for r in rows)) for i, c in enumerate(columns) if i)
    room = max(12, WIDTH - figures - 3 * (len(columns) - 1))
    for row in rows:
        cut = Text(row[0])
        cut.truncate(room, overflow="ellipsis")
        row[0] = cut.plain
    return _table(columns, rows, shrink=len(columns))


def _report_stale(report: Mapping[str, Any]) -> str:
    """The children silent longer than --stale-after, the longest first."""
    from daiban.node.children import format_duration

    after = format_duration(report["stale_after"])
    enrolled, stale = report["children_enrolled"], report["stale_children"]
    if not enrolled:
        return _("No children are enrolled here.")
    if not stale:
        return _("All {n} children have synced within {after}.").format(n=enrolled, after=after)
    rows = [
        (
            c["code"],
            c["name"],
            (c["last_sync_at"] or _("never"))[:16].replace("T", " "),
            _silence(c["silent_seconds"]),
        )
        for c in stale
    ]
    heading = _("Children not synced for more than {after}: {stale} of {n}").format(
        after=after, stale=len(stale), n=enrolled
    )
    return heading + "\n" + _table([_("Code"), _("Name"), _("Last sync"), _("Silent")], rows, shrink=1)


def _report_stale_below(report: Mapping[str, Any]) -> str | None:
    """The nodes below the children (as their parents last reported them)
    silent longer than --stale-after; None when none are known."""
    from daiban.node.children import format_duration

    here = report["node"]
    known = report["nodes_below"] - report["children_enrolled"]
    if known <= 0:
        return None
    after = format_duration(report["stale_after"])
    stale = [n for n in report["stale_nodes"] if n["parent"] != here]
    if not stale:
        return _("All {n} nodes further below have synced within {after}.").format(n=known, after=after)
    heading = _("Further below, not synced for more than {after}: {stale} of {n}").format(
        after=after, stale=len(stale), n=known
    )
    return heading + "\n" + _below_table(stale)


def _below_table(nodes: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        (
            n["code"],
            n["name"],
            n["parent"],
            (n["last_sync_at"] or _("never"))[:16].replace("T", " "),
            _silence(n["silent_seconds"]),
        )
        for n in nodes
    ]
    return _table([_("Code"), _("Name"), _("Under"), _("Last sync"), _("Silent")], rows, shrink=1)


def period_text(period: str) -> str:
    """A period's key as people read it: an ISO week (2026-W49) as 2026年第49周
    in Chinese; a month (2026-12) as it is."""
    year, sep, week = period.partition("-W")
    if sep and year.isdigit() and week.isdigit():
        return _("{year} week {week}").format(year=year, week=int(week))
    return period


def period_span(start: str | None, end: str | None) -> str:
    """The span a report covers, in whole words whatever is left open."""
    if start and end:
        return _("{start} to {end}").format(start=start, end=end)
    if start:
        return _("from {start} on").format(start=start)
    if end:
        return _("up to {end}").format(end=end)
    return _("all time")


def _trend_chart(trend: Mapping[str, Any]) -> str:
    from rich import box
    from rich.bar import Bar
    from rich.table import Table

    periods = list(trend["periods"])
    if not periods:
        return ""
    shown = periods[-TREND_ROWS:]
    top = max(max(p["filed"], p["completed"]) for p in shown) or 1
    title = _("Trend per week") if trend["unit"] == "week" else _("Trend per month")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    table.add_column(_("period"), no_wrap=True)
    table.add_column(_("new"), justify="right", no_wrap=True)
    table.add_column("", width=BAR_WIDTH, no_wrap=True)
    table.add_column(_("done"), justify="right", no_wrap=True)
    table.add_column("", width=BAR_WIDTH, no_wrap=True)
    for p in shown:
        table.add_row(
            period_text(p["period"]),
            str(p["filed"]),
            Bar(top, 0, p["filed"], width=BAR_WIDTH),
            str(p["completed"]),
            Bar(top, 0, p["completed"], width=BAR_WIDTH),
        )
    buffer = io.StringIO()
    _console(buffer).print(table)
    text = title + "\n" + "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
    if len(periods) > len(shown):
        text += "\n" + _("(the last {n} of {total} periods; --json has them all)").format(
            n=len(shown), total=len(periods)
        )
    return text


REPORT_CSV_COLUMNS = (
    "key",
    "name",
    "filed",
    "completed",
    "on_time",
    "on_time_known",
    "on_time_rate",
    "avg_working_days",
    "proxy",
    "proxy_share",
    "evaluated",
    "avg_score",
    "score_5",
    "score_4",
    "score_3",
    "score_2",
    "score_1",
)


def report_csv(report: Mapping[str, Any]) -> str:
    """The report's groups (with --by) and its total as CSV, one row each;
    the total's key is "total"."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REPORT_CSV_COLUMNS)
    rows = [*report["groups"], {"key": "total", "name": report["name"], **report["total"]}]
    for row in rows:
        values = {**row, **{f"score_{s}": n for s, n in row["evaluations"].items()}}
        writer.writerow(["" if values.get(c) is None else values[c] for c in REPORT_CSV_COLUMNS])
    return buffer.getvalue()


def _silence(seconds: float | None) -> str:
    """How long a child has been silent, in the largest unit that reads well."""
    if seconds is None:
        return _("unknown")
    hours = int(seconds // 3600)
    if hours >= 48:
        # Calendar days: "{n} days" is the catalog's working days.
        return _("{days} days").format(days=hours // 24)
    if hours >= 1:
        return _("{n} h").format(n=hours)
    return _("{n} min").format(n=int(seconds // 60))


silence = _silence  # public: the TUI names stale children with it too


def nodes_below_table(nodes: Sequence[Any], *, stale_after: str) -> str:
    """Every node below this one (``daiban children --all``): the parent it
    hangs under, last sync, silence, stale or not."""
    if not nodes:
        return _("No nodes are known below this one.")
    rows = [
        (
            n.code,
            n.name,
            n.parent,
            (n.last_sync_at or _("never"))[:16].replace("T", " "),
            _silence(n.silent_seconds),
            _("stale") if n.stale else _("ok"),
        )
        for n in nodes
    ]
    table = _table(
        [_("Code"), _("Name"), _("Under"), _("Last sync"), _("Silent"), _("State")], rows, shrink=1
    )
    stale = sum(1 for n in nodes if n.stale)
    return (
        table
        + "\n"
        + _("{stale} of {n} nodes below have not synced for more than {after}.").format(
            stale=stale, n=len(nodes), after=stale_after
        )
    )


def children_table(children: Sequence[Any], *, stale_after: str) -> str:
    """The children of this node: last sync, silence, queue, stale or not."""
    if not children:
        return _("No children are enrolled here.")
    rows = [
        (
            c.code,
            c.name,
            (c.last_sync_at or _("never"))[:16].replace("T", " "),
            _silence(c.silent_seconds),
            str(c.queued),
            str(c.quarantined),
            _child_state(c),
        )
        for c in children
    ]
    table = _table(
        [_("Code"), _("Name"), _("Last sync"), _("Silent"), _("Queued"), _("Refused"), _("State")],
        rows,
        shrink=1,
    )
    stale = sum(1 for c in children if c.stale)
    current = [c for c in children if not c.moved and not c.revoked]
    text = (
        table
        + "\n"
        + _("{stale} of {n} children have not synced for more than {after}.").format(
            stale=stale, n=len(current), after=stale_after
        )
    )
    for child in children:
        if child.moved:
            text += "\n" + _("{child} moved to {parent}; what waited for it here was handed on.").format(
                child=child.code, parent=child.moved_to
            )
        elif child.revoked:
            text += "\n" + _(
                "{child} is revoked; what comes for its branch is held here until its nodes enroll here."
            ).format(child=child.code)
    return text


def _child_state(child: Any) -> str:
    if child.moved:
        return _("moved")
    if child.revoked:
        return _("revoked")
    return _("stale") if child.stale else _("ok")


def quarantine_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """What this node refused, newest first: number, when, from whom, kind, why."""
    if not rows:
        return _("Nothing is in quarantine: this node has refused no envelope.")
    table = _table(
        [_("No."), _("Last seen"), _("Sender"), _("Origin"), _("Kind"), _("Reason code"), _("Times")],
        [
            (
                str(r["id"]),
                str(r["at"])[:16].replace("T", " "),
                str(r["sender"]),
                str(r["origin"] or "?"),
                str(r["kind"] or "?"),
                _held_code(r),
                str(r["count"]),
            )
            for r in rows
        ],
        shrink=4,
    )
    held = sum(1 for r in rows if r.get("held"))
    footer = _("{n} refused; `daiban quarantine show ID` shows one with its reason.").format(
        n=len(rows) - held
    )
    if held:
        footer += "\n" + _(
            "{n} held for an upgrade: sent by a newer neighbour, not known to this build; "
            "taken in once this node runs a build that knows them."
        ).format(n=held)
    return table + "\n" + footer


def _held_code(row: Mapping[str, Any]) -> str:
    if row.get("held"):
        return _("{code}, held for an upgrade").format(code=row["code"])
    return str(row["code"])


def quarantine_detail(row: Mapping[str, Any]) -> str:
    """One refused envelope: who, what, why, and its text as it came."""
    lines = [
        _("Quarantine No. {id}").format(id=row["id"]),
        _("Sender: {sender}; origin: {origin}; kind: {kind}").format(
            sender=row["sender"], origin=row["origin"] or "?", kind=row["kind"] or "?"
        ),
        (
            _("Held for an upgrade: {code} — {reason}")
            if row.get("held")
            else _("Refused: {code} — {reason}")
        ).format(code=row["code"], reason=row["reason"]),
        _("First seen {first}, last seen {last}, {count} time(s)").format(
            first=row["first_at"], last=row["at"], count=row["count"]
        ),
        _("Envelope as it came:"),
        str(row["envelope"]),
    ]
    return "\n".join(lines)


def _moment(value: Any) -> str:
    return str(value)[:16].replace("T", " ") if value else _("never")


def status_text(info: Mapping[str, Any]) -> str:
    """`daiban status`: one look at a node, at 80 columns."""
    from daiban.node.divisions import role_name

    lines = [f"{info['code']} {info['name']} ({role_name(info['role'])})"]
    if info["revoked"]:
        lines.append(_("This node's certificate is revoked: enroll it again with a fresh code."))
    parent = info["parent"]
    if parent is None:
        if info["role"] != "city":
            lines.append(_("Parent: not enrolled yet"))
    else:
        lines.append(_("Parent: {code}  {url}").format(code=parent["code"], url=parent["url"] or "?"))
        if parent["revoked"] and parent.get("revoked_by"):
            lines.append(
                "  "
                + _(
                    "The parent's certificate is revoked (by {by}): enroll at {by} or another parent; "
                    "everything queued here is kept until then."
                ).format(by=parent["revoked_by"])
            )
        elif parent["revoked"]:
            lines.append("  " + _("The parent's certificate is revoked: enroll with another parent."))
        if parent["reachable"] is None:
            lines.append("  " + _("No sync has tried it yet."))
        else:
            said = (
                _("At the last sync ({at}) it answered.")
                if parent["reachable"]
                else _("At the last sync ({at}) it did not answer.")
            )
            lines.append("  " + said.format(at=_moment(parent["last_attempt_at"])))
            if parent["refusal"]:
                lines.append("  " + _("It refused this node ({code}).").format(code=parent["refusal"]))
        checked = parent["checked"]
        if checked is not None:
            if checked["reachable"] and checked["error"]:
                lines.append(
                    "  "
                    + _("Checked now: it answers, not with its health ({error}).").format(
                        error=checked["error"]
                    )
                )
            elif checked["reachable"]:
                lines.append(
                    "  "
                    + _("Checked now: it answers (daiban {version}, protocol {protocol}).").format(
                        version=checked["version"] or "?", protocol=checked["protocol"] or "?"
                    )
                )
            else:
                lines.append("  " + _("Checked now: no answer ({error}).").format(error=checked["error"]))
    lines.append(
        _("Software: daiban {version}, protocol {protocol}").format(
            version=info["version"], protocol=info["protocol"]
        )
    )
    lines.append(_("Incarnation: {id}").format(id=info.get("incarnation") or "-"))
    lines.append(
        _("Catalog version {catalog}, manifest version {manifest}").format(
            catalog=info["catalog_version"], manifest=info["manifest_version"]
        )
    )
    lines.append(_("Waiting to go up: {n}").format(n=info["queued_up"]))
    if info.get("kept"):
        lines.append(_("Kept until their office has them: {n}").format(n=info["kept"]))
    held = info["held_for_children"]
    if held or info["held_unenrolled"]:
        lines.append(_("Held for children:"))
        parts = [f"{code} {n}" for code, n in held.items()]
        if info["held_unenrolled"]:
            parts.append(_("not enrolled yet {n}").format(n=info["held_unenrolled"]))
        lines.extend(_fill(parts))
    lines.append(_("Quarantined (refused here): {n}").format(n=info["quarantined"]))
    if info.get("held_for_upgrade"):
        lines.append(
            _("Held for an upgrade (sent by a newer neighbour): {n}").format(n=info["held_for_upgrade"])
        )
    if info["role"] != "city":
        lines.append(_("Last successful sync: {at}").format(at=_moment(info["last_sync_at"])))
    return "\n".join(lines)
