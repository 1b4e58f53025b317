"""The ``daiban`` command: parses arguments, calls one library function, and
turns a refusal into a one-line message and an exit code (0 done, 1 refused,
2 bad usage). Heavy modules are imported inside the commands that need them,
so ``daiban --help`` starts fast."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from daiban import i18n
from daiban.errors import DaibanError, LedgerRefused, NotFound, database_problem
from daiban.i18n import _

ROLES = ("city", "district", "town", "village")
TO_DO_LIMIT = 1000
WITHDRAW_REASONS = ("resident", "duplicate", "typo", "other")  # node.applications.WITHDRAW_REASONS
STATUSES = ("submitted", "received", "accepted", "needs_supplement", "rejected", "completed", "withdrawn")


def N_(message: str) -> str:
    """Mark a message for extraction without translating it here."""
    return message


# argparse's own messages, routed through our catalog in main(); listed here so
# the extractor puts them in the .po files.
ARGPARSE_MESSAGES = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("the following arguments are required: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("unrecognized arguments: %s"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("expected one argument"),
    N_("expected at least one argument"),
    N_("invalid %(type)s value: %(value)r"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("one of the arguments %s is required"),
    N_("not allowed with argument %s"),
)


class UsageError(Exception):
    """Bad usage found after parsing; exit 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, in the user's language, exit 2
        self.print_usage(sys.stderr)
        self.exit(2, _("%(prog)s: error: %(message)s\n") % {"prog": self.prog, "message": message})


def _field(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(_("expected KEY=VALUE, got {text!r}").format(text=text))
    key, value = text.split("=", 1)
    return key.strip(), value


def _status(text: str) -> str:
    """A status by its code or by its name in either language (已受理, 待补正)."""
    from daiban.i18n import speaking
    from daiban.node.lifecycle import Status, status_label

    wanted = text.strip()
    for lang in ("zh", "en"):
        with speaking(lang):
            names = {status_label(s): s.value for s in Status}
        if wanted in names:
            return names[wanted]
    return wanted  # a code, or argparse refuses it against the choices, naming them


def _score(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value not in (1, 2, 3, 4, 5):
        raise argparse.ArgumentTypeError(
            _("a score is 1 to 5 (5 very satisfied … 1 very dissatisfied), got {text!r}").format(text=text)
        )
    return value


# The largest count or row id SQLite holds (a signed 64-bit integer).
MAX_COUNT = 2**63 - 1


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(
            _("must be a whole number from 1 to {max}, got {text!r}").format(max=MAX_COUNT, text=text)
        )
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(_("expected a port from 0 to 65535, got {text!r}").format(text=text))
    return value


MAX_ENROLL_HOURS = 720


def _hours(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    # NaN compares false both ways, so it fails the range like inf and 1e9 do.
    if not 1.0 <= value <= MAX_ENROLL_HOURS:
        raise argparse.ArgumentTypeError(
            _("expected a number of hours from 1 to {max}, got {text!r}").format(
                max=MAX_ENROLL_HOURS, text=text
            )
        )
    return value


def _every(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 7 * 86400.0:
        raise argparse.ArgumentTypeError(
            _("expected a number of seconds above 0 and at most {max}, got {text!r}").format(
                max=7 * 86400, text=text
            )
        )
    return value


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("expected a date as YYYY-MM-DD, got {text!r}").format(text=text)
        ) from None


def _window(text: str) -> Any:
    from daiban.sync.schedule import parse_window

    try:
        return parse_window(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("expected a daily window such as 01:00-05:00, or off; got {text!r}").format(text=text)
        ) from None


def _duration(text: str) -> Any:
    from daiban.node.children import parse_duration

    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("expected a time such as 48h, 2d or 90m; got {text!r}").format(text=text)
        ) from None


def _env_duration(name: str) -> Any:
    """A time from the environment variable ``name`` (None when unset); a bad one is a usage error."""
    text = os.environ.get(name)
    if not text:
        return None
    try:
        return _duration(text)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"{name}: {exc}") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1.0 <= value <= 86400.0:
        raise argparse.ArgumentTypeError(
            _("expected a number of seconds from 1 to 86400, got {text!r}").format(text=text)
        )
    return value


class _Version(argparse.Action):
    """``--version``: the package's version (read only when asked) and the
    sync protocol version it speaks."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        import daiban
        from daiban.sync.protocol import PROTOCOL

        print(f"daiban {daiban.__version__} (protocol {PROTOCOL})")
        parser.exit()


def _sub(group: Any, name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> Parser:
    """A sub-subcommand (catalog list, bundle export, …) with its help and handler."""
    parser: Parser = group.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=func)
    return parser


def build_parser() -> Parser:
    p = Parser(
        prog="daiban",
        description=_(
            "Daiban (代办): file, sync and review government-service applications on behalf of residents."
        ),
    )
    p.add_argument(
        "--home", metavar="DIR", help=_("node home (or DAIBAN_HOME; default: the user data directory)")
    )
    p.add_argument("--lang", choices=["zh", "en"], help=_("language (or DAIBAN_LANG; default zh)"))
    p.add_argument(
        "--agent", metavar="NAME", help=_("the person acting, recorded on events (or DAIBAN_AGENT)")
    )
    p.add_argument("--version", action=_Version, nargs=0, help=_("show the version and exit"))
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    def command(name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> Parser:
        return _sub(sub, name, help_text, func)

    c = command("init", _("make a node home: database, keys, settings and the demo catalog"), cmd_init)
    c.add_argument("--role", required=True, choices=ROLES, help=_("city, district, town or village"))
    c.add_argument("--code", required=True, help=_("division code: 4, 6, 9 or 12 digits by role"))
    c.add_argument("--name", required=True, help=_("the node's name"))
    c.add_argument(
        "--catalog", metavar="FILE", help=_("a catalog JSON file to start with instead of the bundled demo")
    )
    c.add_argument(
        "--passphrase-stdin",
        action="store_true",
        help=_("read a recovery passphrase from standard input: `daiban backup` then keeps the keys, sealed"),
    )
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command(
        "apply",
        _("file an application (or a whole ledger with --from); prints the tracking number"),
        cmd_apply,
    )
    c.add_argument("--item", help=_("catalog item code, e.g. SB001"))
    c.add_argument("--name", help=_("applicant's name"))
    c.add_argument("--id-number", help=_("applicant's resident ID number"))
    c.add_argument("--phone", help=_("applicant's phone"))
    c.add_argument("--region", metavar="CODE", help=_("applicant's division code (default: this node's)"))
    c.add_argument(
        "--field", action="append", default=[], type=_field, metavar="K=V", help=_("an item field")
    )
    c.add_argument(
        "--missing",
        action="append",
        default=[],
        metavar="MATERIAL",
        help=_("a material the resident still owes (容缺), if the item allows it"),
    )
    c.add_argument(
        "--from",
        dest="ledger",
        metavar="FILE",
        help=_("CSV (UTF-8 or GBK) or XLSX ledger of many applications"),
    )
    c.add_argument(
        "--unchecked-uscc",
        action="store_true",
        help=_("accept a legacy credit code that fails its check character"),
    )
    c.add_argument("--guardian-name", default="", help=_("the guardian applying for the resident: name"))
    c.add_argument("--guardian-id-number", default="", help=_("the guardian's resident ID number"))
    c.add_argument(
        "--guardian-relation", default="", help=_("the guardian's relation to the resident, e.g. 父母")
    )
    c.add_argument(
        "--delivery",
        choices=("pickup", "post"),
        default="pickup",
        help=_("how the result reaches the resident (post needs --address)"),
    )
    c.add_argument("--address", default="", help=_("the postal delivery address (sealed)"))
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command("list", _("list the applications this node filed or handles, newest first"), cmd_list)
    c.add_argument(
        "--status",
        type=_status,
        choices=STATUSES,
        help=_("only this status: a code or its name as shown (已受理, needs supplement, …)"),
    )
    c.add_argument("--id-number", help=_("only this resident's applications"))
    c.add_argument(
        "--to-do",
        action="store_true",
        help=_(
            "only what this filing point must act on: supplements, rejections not told yet, "
            "past due, evaluations, refusals"
        ),
    )
    c.add_argument(
        "--limit", type=_limit, metavar="N", help=_("at most N (default: 20 on screen, all with --json)")
    )
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command("show", _("show one application with its history"), cmd_show)
    c.add_argument("tracking", metavar="TRACKING")
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command(
        "notice",
        _("the notice for an application's state (收件回执, 受理通知书, 一次性告知单 …), as text or PDF"),
        cmd_notice,
    )
    c.add_argument("tracking", metavar="TRACKING")
    c.add_argument(
        "--kind",
        choices=("receipt", "accepted", "supplement", "rejected", "completed"),
        help=_("which notice (default: the one for the application's state now)"),
    )
    c.add_argument("--pdf", action="store_true", help=_("write a printable PDF page and print its path"))
    c.add_argument(
        "--print",
        dest="send",
        action="store_true",
        help=_("send it to the printer (saved under receipts/ when no printer answers)"),
    )

    c = command("review", _("decide an application at the office that handles it"), cmd_review)
    c.add_argument("tracking", metavar="TRACKING")
    c.add_argument("action", choices=("accept", "supplement", "reject", "complete"))
    c.add_argument("--note", default="", help=_("a note; for reject, the reason; for complete, the result"))
    c.add_argument(
        "--missing",
        action="append",
        default=[],
        metavar="M",
        help=_("accept: a material still owed (容缺受理); supplement: each thing missing"),
    )
    c.add_argument(
        "--delivery",
        choices=("pickup", "post"),
        default="pickup",
        help=_("complete: how the result is delivered"),
    )
    c.add_argument(
        "--post-tracking",
        default="",
        metavar="NUMBER",
        help=_("complete --delivery post: the postal tracking number"),
    )
    c.add_argument(
        "--supplement-by",
        default="",
        metavar="YYYY-MM-DD",
        help=_("supplement: the day by which to hand the materials in (default: 10 working days)"),
    )
    c.add_argument(
        "--address",
        default="",
        help=_("complete --delivery post: the delivery address, if not given at filing (sealed)"),
    )
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command("supplement", _("record materials handed in later (补正 or 容缺)"), cmd_supplement)
    c.add_argument("tracking", metavar="TRACKING")
    c.add_argument(
        "--material",
        action="append",
        default=[],
        metavar="M",
        help=_("a material supplied (default: everything outstanding)"),
    )
    c.add_argument("--note", default="")
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command("withdraw", _("withdraw an application before it is accepted"), cmd_withdraw)
    c.add_argument("tracking", metavar="TRACKING")
    c.add_argument(
        "--reason",
        required=True,
        choices=WITHDRAW_REASONS,
        help=_(
            "why: resident (at the resident's request), duplicate (filed twice), typo (typed wrongly), other"
        ),
    )
    c.add_argument("--note", default="", help=_("more words (required with --reason other)"))
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command(
        "correct", _("correct what was typed in an application, before the office accepts it"), cmd_correct
    )
    c.add_argument("tracking", metavar="TRACKING")
    c.add_argument("--name", help=_("the applicant's name, corrected"))
    c.add_argument("--id-number", help=_("the applicant's resident ID number, corrected"))
    c.add_argument("--phone", help=_("the applicant's phone, corrected"))
    c.add_argument(
        "--field", action="append", default=[], type=_field, metavar="K=V", help=_("an item field, corrected")
    )
    c.add_argument("--reason", required=True, help=_("why it is corrected"))
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command(
        "told",
        _("note that the resident was told of a rejection (it leaves the to-do list)"),
        cmd_told,
    )
    c.add_argument("tracking", metavar="TRACKING")
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command(
        "evaluate", _("record the resident's evaluation (好差评) of a completed application"), cmd_evaluate
    )
    c.add_argument("tracking", metavar="TRACKING")
    c.add_argument("score", type=_score, metavar="SCORE", help=_("5 very satisfied … 1 very dissatisfied"))
    c.add_argument("--comment", default="")
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command("catalog", _("read the service catalog"), cmd_catalog_list)
    csub = c.add_subparsers(dest="catalog_command", metavar="list|show|publish", parser_class=Parser)
    csub.required = True
    cl = _sub(csub, "list", _("find items by code, Chinese name or pinyin initials"), cmd_catalog_list)
    cl.add_argument("query", nargs="?", default="", metavar="WORD", help=_("e.g. 养老 or cxjmyl"))
    cl.add_argument("--level", choices=("town", "district", "city"))
    cl.add_argument("--json", action="store_true", help=_("print JSON"))
    cs = _sub(csub, "show", _("one item: materials, fields, time limit"), cmd_catalog_show)
    cs.add_argument("code", metavar="CODE")
    cs.add_argument("--json", action="store_true", help=_("print JSON"))
    cp = _sub(
        csub, "publish", _("sign and publish a new catalog version to every node (city)"), cmd_catalog_publish
    )
    cp.add_argument("file", metavar="FILE", help=_("catalog JSON file"))
    cp.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command("serve", _("run the HTTP server for this node's children"), cmd_serve)
    c.add_argument("--host", default="127.0.0.1", help=_("address to listen on (default 127.0.0.1)"))
    c.add_argument("--port", type=_port, default=8720, help=_("port (default 8720; 0 picks a free one)"))
    c.add_argument(
        "--forward-window",
        type=_window,
        metavar="HH:MM-HH:MM",
        help=_(
            "when to sync with this node's own parent, daily, with retries (default: 01:00-05:00 "
            "at a district, off elsewhere; off: never)"
        ),
    )
    c.add_argument(
        "--stale-after",
        type=_duration,
        metavar="TIME",
        help=_("a child silent this long is stale in the metrics (default 48h)"),
    )

    c = command(
        "enroll-code", _("at a parent: print a one-time enrollment code for a child"), cmd_enroll_code
    )
    c.add_argument("--code", required=True, help=_("the child's division code"))
    c.add_argument("--name", required=True, help=_("the child's name"))
    c.add_argument(
        "--hours", type=_hours, default=72.0, help=_("hours until the code expires, 1 to 720 (default 72)")
    )
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command("enroll", _("at a child: enroll with the parent at URL"), cmd_enroll)
    c.add_argument("url", metavar="URL")
    c.add_argument("enroll_code", metavar="ENROLL_CODE")
    c.add_argument("--root", metavar="FINGERPRINT", help=_("the city root fingerprint to expect"))
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command("sync", _("push and pull with the parent; exit 0 when nothing is left undelivered"), cmd_sync)
    mode = c.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help=_("sync once (the default)"))
    mode.add_argument(
        "--watch",
        action="store_true",
        help=_(
            "keep syncing whenever the parent is reachable, until Ctrl-C; a line per sync that moved anything"
        ),
    )
    c.add_argument(
        "--interval",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help=_("--watch: seconds between syncs while the link is up (default 30)"),
    )
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command("children", _("at a parent: each child's last sync, and which have gone stale"), cmd_children)
    c.add_argument(
        "--stale-after",
        type=_duration,
        metavar="TIME",
        help=_("a child silent longer than this is stale (default 48h)"),
    )
    c.add_argument("--stale", action="store_true", help=_("list only the stale children"))
    c.add_argument(
        "--all",
        action="store_true",
        help=_("every node below, with the parent it hangs under, as the parents last reported them"),
    )
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command(
        "status",
        _("one look at this node: parent, versions, queues, quarantine, last sync"),
        cmd_status,
    )
    c.add_argument(
        "--check", action="store_true", help=_("also ask the parent whether it answers now (a few seconds)")
    )
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command(
        "quarantine", _("envelopes this node refused, with their reason, origin and sender"), cmd_quarantine
    )
    qsub = c.add_subparsers(dest="quarantine_command", metavar="list|show|retry", parser_class=Parser)
    ql = _sub(qsub, "list", _("list what this node refused, newest first"), cmd_quarantine)
    ql.add_argument("--json", action="store_true", help=_("print JSON"))
    qs = _sub(qsub, "show", _("one refused envelope, as it came"), cmd_quarantine_show)
    qs.add_argument("id", type=_limit, metavar="ID")
    qs.add_argument("--json", action="store_true", help=_("print JSON"))
    qr = _sub(
        qsub,
        "retry",
        _("examine quarantined envelopes again with this build; take in what it admits"),
        cmd_quarantine_retry,
    )
    qr.add_argument(
        "ids",
        type=_limit,
        nargs="*",
        metavar="ID",
        help=_("the numbers to examine (default: those held for an upgrade, and unknown kinds or bodies)"),
    )
    qr.add_argument("--json", action="store_true", help=_("print JSON"))
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command("bundle", _("sync on a USB stick: export or import a bundle"), cmd_bundle_export)
    bsub = c.add_subparsers(dest="bundle_command", metavar="export|import", parser_class=Parser)
    bsub.required = True
    be = _sub(
        bsub,
        "export",
        _("write what goes to the parent (or, with --for, to a child) to FILE"),
        cmd_bundle_export,
    )
    be.add_argument("file", metavar="FILE")
    be.add_argument(
        "--for", dest="child", metavar="CHILD", help=_("a child's code: export what waits for it")
    )
    be.add_argument("--json", action="store_true", help=_("print JSON"))
    bi = _sub(bsub, "import", _("take in a bundle from the parent or a child"), cmd_bundle_import)
    bi.add_argument("file", metavar="FILE")
    bi.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command(
        "backup",
        _("back up this node's database continuously (Litestream) or on a schedule (snapshots)"),
        cmd_backup,
    )
    c.add_argument(
        "--replica",
        metavar="URL",
        help=_("a folder (USB stick, network share), or an sftp:// or s3:// URL; remembered"),
    )
    c.add_argument(
        "--mode",
        choices=("auto", "litestream", "snapshot"),
        default="auto",
        help=_("auto (default): Litestream where it is installed, else SQLite snapshots"),
    )
    c.add_argument(
        "--every",
        type=_every,
        default=300.0,
        metavar="SECONDS",
        help=_("snapshot mode: seconds between snapshots (default 300)"),
    )
    c.add_argument("--once", action="store_true", help=_("back up once and exit"))

    c = command("restore", _("bring the database back from its backup into an empty home"), cmd_restore)
    c.add_argument(
        "--replica", metavar="URL", help=_("where it was backed up (default: the home's litestream.yml)")
    )
    keys = c.add_mutually_exclusive_group()
    keys.add_argument(
        "--passphrase-stdin",
        action="store_true",
        help=_("read the recovery passphrase from standard input, to bring the keys back too"),
    )
    keys.add_argument(
        "--without-keys",
        action="store_true",
        help=_("the passphrase is lost: restore with new keys (then enroll again)"),
    )
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command(
        "keys", _("this node's keys: the recovery passphrase they are kept under"), cmd_keys_passphrase
    )
    ksub = c.add_subparsers(dest="keys_command", metavar="passphrase", parser_class=Parser)
    ksub.required = True
    kp = _sub(
        ksub,
        "passphrase",
        _(
            "set the recovery passphrase: `daiban backup` keeps the keys, sealed under it, beside "
            "the database"
        ),
        cmd_keys_passphrase,
    )
    kp.add_argument(
        "--passphrase-stdin", action="store_true", help=_("read the passphrase from standard input")
    )
    kp.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command(
        "divisions",
        _("the city's division code changes (towns merge, a 镇 becomes a 街道)"),
        cmd_divisions_list,
    )
    dsub = c.add_subparsers(dest="divisions_command", metavar="list|change", parser_class=Parser)
    dsub.required = True
    dl = _sub(dsub, "list", _("the code changes in force at this node"), cmd_divisions_list)
    dl.add_argument("--json", action="store_true", help=_("print JSON"))
    dc = _sub(
        dsub,
        "change",
        _("publish that office code OLD is now NEW, in a new manifest to every node (city)"),
        cmd_divisions_change,
    )
    dc.add_argument("old", metavar="OLD", help=_("the town's or district's code that changes"))
    dc.add_argument("new", metavar="NEW", help=_("its new code, same level, same parent"))
    dc.add_argument("--name", required=True, help=_("the new name, e.g. 某某街道"))
    dc.add_argument(
        "--effective", metavar="YYYY-MM-DD", help=_("the day it takes effect by law (default: today)")
    )
    dc.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command("revoke", _("revoke a descendant node's certificate"), cmd_revoke)
    c.add_argument("code", metavar="CODE")
    c.add_argument("--json", action="store_true", help=_("print JSON"))

    c = command("agent", _("the agents and staff who log in at this node"), cmd_agent_list)
    asub = c.add_subparsers(dest="agent_command", metavar="add|list|pin|remove", parser_class=Parser)
    asub.required = True
    aa = _sub(asub, "add", _("add an agent; the PIN (6-12 digits) is asked for twice"), cmd_agent_add)
    aa.add_argument("name", metavar="NAME")
    aa.add_argument("--pin-stdin", action="store_true", help=_("read the PIN from standard input"))
    aa.add_argument("--json", action="store_true", help=_("print JSON"))
    al = _sub(asub, "list", _("list the agents (never their PINs)"), cmd_agent_list)
    al.add_argument("--json", action="store_true", help=_("print JSON"))
    ap = _sub(asub, "pin", _("set a new PIN for an agent (forgotten or locked)"), cmd_agent_pin)
    ap.add_argument("name", metavar="NAME")
    ap.add_argument("--pin-stdin", action="store_true", help=_("read the PIN from standard input"))
    ar = _sub(
        asub, "remove", _("stop an agent from logging in (their events keep their name)"), cmd_agent_remove
    )
    ar.add_argument("name", metavar="NAME")

    c = command("tui", _("the terminal app for village agents and office staff"), cmd_tui)
    c.add_argument(
        "--stale-after",
        type=_duration,
        metavar="TIME",
        help=_(
            "at an office: a child silent longer than this is named on Home and the dashboard (default 48h)"
        ),
    )
    c.add_argument(
        "--idle-after",
        type=_duration,
        metavar="TIME",
        help=_("log out after this long without a key, e.g. 10m (or DAIBAN_IDLE_AFTER; default 10m)"),
    )
    c = command(
        "report",
        _("statistics at a district or the city: filed, completed, on time, working days, evaluations"),
        cmd_report,
    )
    c.add_argument("--from", dest="start", type=_day, metavar="DATE", help=_("first day, YYYY-MM-DD"))
    c.add_argument("--to", dest="end", type=_day, metavar="DATE", help=_("last day, YYYY-MM-DD"))
    c.add_argument(
        "--by",
        choices=("district", "town", "village", "item"),
        help=_("one row per district, town, village or item"),
    )
    c.add_argument(
        "--stale-after",
        type=_duration,
        metavar="TIME",
        help=_("a child silent longer than this is stale (default 48h)"),
    )
    form = c.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help=_("print JSON"))
    form.add_argument("--csv", action="store_true", help=_("print CSV"))
    return p


# -- plumbing -----------------------------------------------------------------


def _home(args: argparse.Namespace) -> Path:
    from daiban.paths import resolve_home

    return resolve_home(args.home)


def _open(args: argparse.Namespace) -> Any:
    from daiban.node.home import open_node

    return open_node(_home(args), actor=args.agent or os.environ.get("DAIBAN_AGENT"))


def _with_node(args: argparse.Namespace, action: Callable[[Any], Any]) -> Any:
    """Open the node, do one thing with it, close it."""
    node = _open(args)
    try:
        return action(node)
    finally:
        node.close()


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _warn(lines: Sequence[str]) -> None:
    for line in lines:
        sys.stderr.write(_("note: {text}").format(text=line) + "\n")


# -- commands -----------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from daiban.node.home import init_home

    catalog = Path(args.catalog) if args.catalog else None
    passphrase = sys.stdin.readline() if args.passphrase_stdin else None
    node = init_home(
        _home(args),
        role=args.role,
        code=args.code,
        name=args.name,
        catalog_path=catalog,
        passphrase=passphrase,
    )
    try:
        info = {
            "home": str(node.home),
            "role": node.role,
            "code": node.code,
            "name": node.name,
            "catalog": node.catalog_info(),
            "items": len(node.items()),
            "recovery_passphrase": passphrase is not None,
        }
    finally:
        node.close()
    if args.json:
        _print_json(info)
    else:
        from daiban.render import init_summary

        print(init_summary(info))
        if passphrase is not None:
            print(_keys_sealed_line())
    return 0


def _keys_sealed_line() -> str:
    """One sentence, said by init and by keys passphrase."""
    return _(
        "Recovery passphrase set: `daiban backup` keeps this node's keys, sealed under it, beside the "
        "database in a folder replica. Keep the passphrase apart from the backup."
    )


def cmd_keys_passphrase(args: argparse.Namespace) -> int:
    from daiban.node import keybackup

    passphrase = _read_passphrase(args.passphrase_stdin, confirm=True)
    path = _with_node(args, lambda node: keybackup.set_passphrase(node.home, node.code, passphrase))
    if args.json:
        _print_json({"recovery_passphrase": True, "file": str(path)})
    else:
        print(_keys_sealed_line())
    return 0


def _read_passphrase(from_stdin: bool, *, confirm: bool) -> str:
    """A recovery passphrase from standard input, or asked for at the
    terminal (twice when a new one is set)."""
    if from_stdin:
        return sys.stdin.readline()
    import getpass

    if not sys.stdin.isatty():
        raise UsageError(_("no terminal to ask for the passphrase; use --passphrase-stdin"))
    if not confirm:
        return getpass.getpass(_("Recovery passphrase (Enter alone: restore without the keys): "))
    passphrase = getpass.getpass(_("Recovery passphrase: "))
    if getpass.getpass(_("Passphrase again: ")) != passphrase:
        raise DaibanError(_("The two passphrases differ; nothing was changed."), code="passphrase_mismatch")
    return passphrase


def cmd_apply(args: argparse.Namespace) -> int:
    if args.ledger:
        if (
            args.item
            or args.name
            or args.id_number
            or args.phone
            or args.field
            or args.missing
            or args.guardian_name
            or args.guardian_id_number
            or args.guardian_relation
            or args.address
        ):
            raise UsageError(_("--from files a whole ledger; give the applicant options only without it"))
        return _apply_ledger(args)
    absent = [
        flag
        for flag, value in (
            ("--item", args.item),
            ("--name", args.name),
            ("--id-number", args.id_number),
            ("--phone", args.phone),
        )
        if not value
    ]
    if absent:
        raise UsageError(_("the following arguments are required: %s") % ", ".join(absent))
    from daiban.node.applications import Filing

    node = _open(args)
    try:
        filed = node.file(
            Filing(
                item=args.item,
                name=args.name,
                id_number=args.id_number,
                phone=args.phone,
                region=args.region,
                fields=dict(args.field),
                missing=args.missing,
                allow_unchecked_uscc=args.unchecked_uscc,
                guardian={
                    "name": args.guardian_name,
                    "id_number": args.guardian_id_number,
                    "relation": args.guardian_relation,
                },
                delivery=args.delivery,
                address=args.address,
            )
        )
    finally:
        node.close()
    _warn(filed.warnings)
    if args.json:
        _print_json(filed.as_dict())
    else:
        from daiban.render import filed_summary

        print(filed.tracking)
        print(filed_summary(filed))
    return 0


def _apply_ledger(args: argparse.Namespace) -> int:
    from daiban.node import ledger

    node = _open(args)
    try:
        book = ledger.read(Path(args.ledger))
        titles = {
            item.code: {
                spec.get("title", key): key for key, spec in item.fields.get("properties", {}).items()
            }
            for item in node.items()
        }
        try:
            filed = node.file_ledger(
                ledger.filings(book, titles, allow_unchecked_uscc=args.unchecked_uscc),
                digest=book.digest,
                filename=book.name,
            )
        except LedgerRefused as exc:
            if args.json:
                _print_json({"ok": False, "filed": 0, "refused": exc.rows})
            for row in exc.rows:
                sys.stderr.write(_("row {row}: {reason}").format(row=row["row"], reason=row["reason"]) + "\n")
            raise
    finally:
        node.close()
    for f in filed:
        _warn([_("row for {tracking}: {text}").format(tracking=f.tracking, text=w) for w in f.warnings])
    if args.json:
        _print_json({"ok": True, "filed": len(filed), "applications": [f.as_dict() for f in filed]})
    else:
        print(_("Filed {n} applications from {name}.").format(n=len(filed), name=book.name))
        for f in filed:
            print(f"{f.tracking}  {f.item.code}  {f.item.name}")
    return 0


DEFAULT_PAGE = 20


def cmd_list(args: argparse.Namespace) -> int:
    node = _open(args)
    try:
        limit = args.limit if args.limit or args.json else DEFAULT_PAGE
        if args.to_do:
            if args.status or args.id_number:
                raise DaibanError(_("--to-do lists on its own: leave out --status and --id-number."))
            rows = node.to_do(limit=limit or TO_DO_LIMIT)
            total = len(rows)
        else:
            rows = node.list(status=args.status, limit=limit, id_number=args.id_number)
            total = node.count(status=args.status, id_number=args.id_number) if not args.json else len(rows)
        code, name = node.code, node.name
        # Applications whose personal part cannot be opened here cannot be
        # searched by ID number: one line each, so none goes missing unsaid.
        unopenable = [exc.message for exc in node.unopenable()] if args.id_number else []
    finally:
        node.close()
    _warn(unopenable)
    if args.json:
        _print_json(rows)
    else:
        from daiban.render import application_table

        print(application_table(rows, total=total, node=f"{code} {name}"))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from daiban.node import places

    def read(node: Any) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
        return node.show(args.tracking), places.names(node), field_labels(node, args.tracking)

    view, names, labels = _with_node(args, read)
    if args.json:
        _print_json(view)
    else:
        from daiban.render import application_detail

        print(application_detail(view, names, labels))
    return 0


def field_labels(node: Any, tracking: str) -> dict[str, str]:
    """The labels of the form fields of the item an application was filed under."""
    from daiban.node.validation import field_label

    try:
        props = node.filed_item(tracking).fields.get("properties", {})
    except DaibanError:
        return {}
    return {key: field_label(key, spec) for key, spec in props.items()}


def _after_change(args: argparse.Namespace, row: dict[str, Any], done: str) -> int:
    from daiban.node.applications import public_view

    view = public_view(row)
    if args.json:
        _print_json(view)
    else:
        from daiban.render import change_summary

        print(change_summary(view, done))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    row = _with_node(
        args,
        lambda node: node.review(
            args.tracking,
            args.action,
            note=args.note,
            missing=args.missing,
            delivery=args.delivery,
            post_tracking=args.post_tracking,
            supplement_by=args.supplement_by,
            address=args.address,
        ),
    )
    return _after_change(args, row, args.action)


def cmd_notice(args: argparse.Namespace) -> int:
    from daiban import notices

    def make(node: Any) -> tuple[Any, Path]:
        notice = notices.compose(node, args.tracking, args.kind, agent=node.actor)
        return notice, notices.save_notice(node.home, notice, as_pdf=args.pdf or args.send)

    notice, path = _with_node(args, make)
    if args.send:
        print(notices.print_file(path))
    elif args.pdf:
        print(path)
    else:
        sys.stdout.write(notices.text(notice))
    return 0


def cmd_supplement(args: argparse.Namespace) -> int:
    row = _with_node(args, lambda node: node.supplement(args.tracking, args.material, note=args.note))
    return _after_change(args, row, "supplement_received")


def cmd_withdraw(args: argparse.Namespace) -> int:
    row = _with_node(args, lambda node: node.withdraw(args.tracking, reason=args.reason, note=args.note))
    return _after_change(args, row, "withdraw")


def cmd_correct(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {
        k: v for k, v in (("name", args.name), ("id_number", args.id_number), ("phone", args.phone)) if v
    }
    if args.field:
        changes["fields"] = dict(args.field)
    row = _with_node(args, lambda node: node.correct(args.tracking, changes, reason=args.reason))
    return _after_change(args, row, "correct")


def cmd_told(args: argparse.Namespace) -> int:
    row = _with_node(args, lambda node: node.mark_told(args.tracking))
    return _after_change(args, row, "told")


def cmd_evaluate(args: argparse.Namespace) -> int:
    row = _with_node(args, lambda node: node.evaluate(args.tracking, args.score, comment=args.comment))
    return _after_change(args, row, "evaluate")


def cmd_catalog_list(args: argparse.Namespace) -> int:
    from daiban.node.catalog import search

    node = _open(args)
    try:
        items = search(node.items(), args.query, args.level)
        info = node.catalog_info()
    finally:
        node.close()
    if args.json:
        _print_json([i.summary() for i in items])
    else:
        from daiban.render import catalog_table

        print(catalog_table(items, info, args.query))
    return 0 if items or not args.query else 1


def cmd_catalog_show(args: argparse.Namespace) -> int:
    item = _with_node(args, lambda node: node.item(args.code))
    if args.json:
        _print_json(item.detail())
    else:
        from daiban.render import catalog_detail

        print(catalog_detail(item))
    return 0


def cmd_catalog_publish(args: argparse.Namespace) -> int:
    from daiban.node import manifest
    from daiban.node.catalog import read_document

    version = _with_node(args, lambda node: manifest.publish(node, read_document(Path(args.file))))
    if args.json:
        _print_json({"version": version})
    else:
        print(
            _("Published manifest version {version}; it goes down to every node as they sync.").format(
                version=version
            )
        )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from daiban.node.backup import SETTING, alongside
    from daiban.node.children import DEFAULT_STALE_AFTER
    from daiban.node.home import open_node
    from daiban.sync.schedule import default_window
    from daiban.sync.serve_config import ServeConfig
    from daiban.sync.server import serve

    node = open_node(_home(args))  # refuse a missing home before binding the port
    try:
        replica = node.store.setting(SETTING)
        window = default_window(node.role) if args.forward_window is None else args.forward_window
        if window is not None and node.role == "city":
            raise UsageError(_("the city has no parent to forward to; leave out --forward-window"))
    finally:
        node.close()
    config = ServeConfig(forward_window=window, stale_after=args.stale_after or DEFAULT_STALE_AFTER)

    def ready(url: str) -> None:
        print(_("Serving {url} (Ctrl-C stops).").format(url=url), flush=True)

    def notice(text: str) -> None:
        sys.stderr.write(text + "\n")

    with alongside(_home(args), replica, notice):
        serve(_home(args), args.host, args.port, ready, config)
    return 0


def cmd_enroll_code(args: argparse.Namespace) -> int:
    from daiban.node.divisions import check_code
    from daiban.sync.service import new_enroll_code
    from daiban.trust.certs import CertError

    node = _open(args)
    try:
        child = check_code(args.code)
        try:
            code, expires = new_enroll_code(node, child, args.name, args.hours)
        except CertError as exc:
            if exc.code == "not_enrolled":
                raise DaibanError(
                    _("This node must enroll with its own parent before it enrolls children."),
                    code="not_enrolled",
                ) from None
            raise DaibanError(
                _("{parent} may enroll only codes that extend its own, not {child}.").format(
                    parent=node.code, child=child
                ),
                code="name_constraint",
            ) from None
    finally:
        node.close()
    if args.json:
        _print_json({"code": code, "expires": expires})
    else:
        print(f"{code[:4]}-{code[4:8]}-{code[8:]}")
        print(_("One-time code for {child}, valid until {expires}.").format(child=child, expires=expires))
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    import asyncio
    import re

    from stdnum import damm

    from daiban.sync.client import enroll

    code = re.sub(r"[\s-]", "", args.enroll_code)
    if not (code.isdigit() and len(code) == 11 and damm.is_valid(code)):
        raise DaibanError(
            _(
                "The enrollment code {code} fails its check digit: a digit is mistyped or two "
                "are swapped. Read it again."
            ).format(code=args.enroll_code),
            code="bad_code",
        )
    result = _with_node(args, lambda node: asyncio.run(enroll(node, args.url, code, args.root)))
    if args.json:
        _print_json(result)
    else:
        print(
            _("Enrolled with {code} {name}. City root fingerprint: {root}").format(
                code=result["parent"]["code"], name=result["parent"]["name"], root=result["root"]
            )
        )
    return 0


def _sync_summary(report: Any) -> str:
    text = _("Sent {pushed} (already there: {dup}), received {pulled}, refused {q}, still queued {left}.")
    return text.format(
        pushed=report.pushed,
        dup=report.duplicates,
        pulled=report.pulled,
        q=len(report.quarantined),
        left=report.left,
    )


def cmd_sync(args: argparse.Namespace) -> int:
    if args.watch:
        return _sync_watch(args)

    def once(node: Any) -> Any:
        # The node opens first (a missing home is one line, quickly); the
        # client (aiohttp, the journal, the signing library) loads once it
        # is about to be used.
        import asyncio

        from daiban.collector import collect_less
        from daiban.sync.client import sync_once

        collect_less()
        return asyncio.run(sync_once(node))

    report = _with_node(args, once)
    if args.json:
        _print_json(report.as_dict())
    else:
        print(_sync_summary(report))
        for q in report.quarantined:
            print(_("refused: {id} {reason}").format(id=q.get("id"), reason=q.get("reason")))
        if report.recovered:
            print(
                _("Caught up after the restore: {n} envelopes taken back from the parent.").format(
                    n=report.recovered
                )
            )
    return 0 if report.left == 0 else 1


def _sync_watch(args: argparse.Namespace) -> int:
    """``sync --watch``: one line per sync that moved something, a line on
    stderr when the link goes and when it comes back; SIGINT/SIGTERM stop it."""
    import asyncio
    import datetime
    import signal

    from daiban import logs
    from daiban.sync.watch import Watcher

    logs.setup(_home(args), "watch", stream=None)
    down = False

    def on_report(report: Any) -> None:
        if args.json:
            line = json.dumps(report.as_dict(), ensure_ascii=False)
        else:
            line = f"{datetime.datetime.now():%H:%M:%S} {_sync_summary(report)}"
            for q in report.quarantined:
                line += "\n" + _("refused: {id} {reason}").format(id=q.get("id"), reason=q.get("reason"))
        print(line, flush=True)

    def on_reachable(up: bool, message: str) -> None:
        nonlocal down
        if not up:
            sys.stderr.write(_("note: {text}").format(text=message) + " " + _("Retrying.") + "\n")
        elif down:
            sys.stderr.write(_("note: {text}").format(text=_("The parent is reachable again.")) + "\n")
        sys.stderr.flush()
        down = not up

    async def main(node: Any) -> None:
        watcher = Watcher(node, interval=args.interval, on_report=on_report, on_reachable=on_reachable)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, watcher.stop)
            except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises KeyboardInterrupt
                pass
        await watcher.run()

    _with_node(args, lambda node: asyncio.run(main(node)))
    return 0


def cmd_children(args: argparse.Namespace) -> int:
    from daiban.node.children import DEFAULT_STALE_AFTER, child_statuses, format_duration

    after = args.stale_after or DEFAULT_STALE_AFTER
    if args.all:
        return _children_all(args, after)
    children = _with_node(
        args,
        lambda node: child_statuses(node.store.children_sync(include_moved=True), node.clock(), after),
    )
    if args.stale:
        children = [c for c in children if c.stale]
    if args.json:
        _print_json([c.listing() for c in children])
    else:
        from daiban.render import children_table

        print(children_table(children, stale_after=format_duration(after.total_seconds())))
    return 0


def _children_all(args: argparse.Namespace, after: dt.timedelta) -> int:
    from daiban.node.children import below, format_duration

    nodes = _with_node(args, lambda node: below(node, after))
    if args.stale:
        nodes = [n for n in nodes if n.stale]
    if args.json:
        _print_json([n.as_dict() for n in nodes])
    else:
        from daiban.render import nodes_below_table

        print(nodes_below_table(nodes, stale_after=format_duration(after.total_seconds())))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from daiban.sync.status import status

    info = _with_node(args, lambda node: status(node, check=args.check))
    if args.json:
        _print_json(info)
    else:
        from daiban.render import status_text

        print(status_text(info))
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    rows = _with_node(args, lambda node: node.store.quarantine_rows())
    if args.json:
        _print_json(rows)
    else:
        from daiban.render import quarantine_table

        print(quarantine_table(rows))
    return 0


def cmd_quarantine_show(args: argparse.Namespace) -> int:
    row = _with_node(args, lambda node: node.store.quarantine_row(args.id))
    if row is None:
        raise NotFound(_("Nothing in quarantine has the number {id}.").format(id=args.id))
    row["envelope"] = row.pop("raw")
    row.pop("digest", None)
    row["held"] = bool(row["held"])
    if args.json:
        _print_json(row)
    else:
        from daiban.render import quarantine_detail

        print(quarantine_detail(row))
    return 0


def cmd_quarantine_retry(args: argparse.Namespace) -> int:
    from daiban.node import upgrade

    def retry(node: Any) -> upgrade.Reexamined:
        for number in args.ids:
            if node.store.quarantine_row(number) is None:
                raise NotFound(_("Nothing in quarantine has the number {id}.").format(id=number))
        return upgrade.reexamine(node, args.ids or None)

    done = _with_node(args, retry)
    if args.json:
        _print_json(done.as_dict())
    else:
        print(
            _(
                "Taken in: {taken}; already held here: {duplicates}; still waiting for an upgrade: "
                "{held}; refused: {refused}."
            ).format(**done.as_dict())
        )
    return 0


def cmd_bundle_export(args: argparse.Namespace) -> int:
    from daiban.sync.bundle import export

    result = _with_node(args, lambda node: export(node, Path(args.file), args.child))
    if args.json:
        _print_json(result)
    else:
        print(
            _("Wrote {n} envelopes for {to} to {file}.").format(
                n=result["envelopes"], to=result["to"], file=result["file"]
            )
        )
    return 0


def cmd_bundle_import(args: argparse.Namespace) -> int:
    from daiban.sync.bundle import import_

    result = _with_node(args, lambda node: import_(node, Path(args.file)))
    if args.json:
        _print_json(result)
    else:
        print(
            _(
                "Took in {stored} new envelopes from {sender} (already here: {dup}, refused: {refused})."
            ).format(
                stored=result["stored"],
                sender=result["from"],
                dup=result["duplicates"],
                refused=result["refused"],
            )
        )
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    import contextlib

    from daiban.node import backup

    home = _home(args)

    def configure(node: Any) -> tuple[str, backup.Plan]:
        replica = args.replica or node.store.setting(backup.SETTING)
        if not replica:
            raise backup.BackupError(
                _(
                    "No backup is configured: give --replica with a folder (a USB stick, a network "
                    "share) or an sftp:// or s3:// URL."
                )
            )
        url = backup.replica_url(replica)
        plan = backup.plan(home, url, mode=args.mode, every=args.every)
        if url != node.store.setting(backup.SETTING):
            with node.store.transaction():
                node.store.set_setting(backup.SETTING, url)
        return node.code, plan

    # One backup per node, refused before anything is stored or said (a
    # missing home is refused by opening it).
    with backup.only_one(home) if home.is_dir() else contextlib.nullcontext():
        code, plan = _with_node(args, configure)
        return _backing_up(args, code, plan)


def _backing_up(args: argparse.Namespace, code: str, plan: Any) -> int:
    import signal
    import threading

    from daiban.node import backup

    if plan.mode == "litestream":
        assert plan.litestream is not None
        print(
            _("Backing up {code} continuously with Litestream {version} to {url} (Ctrl-C stops).").format(
                code=code, version=backup.litestream_version(plan.litestream), url=plan.url
            ),
            flush=True,
        )
    else:
        reason = (
            _("Litestream is not installed on this computer")
            if backup.find_litestream() is None
            else _("as asked with --mode snapshot")
        )
        print(
            _(
                "Backing up {code} with SQLite snapshots every {every:g} s to {url} ({reason}; Ctrl-C stops)."
            ).format(code=code, every=plan.every, url=plan.url, reason=reason),
            flush=True,
        )
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_a: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        backup.run(
            plan,
            code,
            stop,
            once=args.once,
            on_snapshot=lambda info: print(
                _("Snapshot written: {bytes} bytes in {seconds} s.").format(**info), flush=True
            ),
            on_keys=lambda state, detail: print(_keys_line(state, detail, plan.url), flush=True),
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _keys_line(state: str, detail: str, url: str) -> str:
    """What ``daiban backup`` holds of the node's keys, in one line."""
    from daiban.node import keybackup

    if state == keybackup.KEPT:
        return _(
            "The keys are kept beside the database too ({file}), sealed under the recovery passphrase."
        ).format(file=keybackup.REPLICA_NAME)
    if state == keybackup.STALE:
        return _(
            "The recovery passphrase was set for keys this node no longer has: set it again with "
            "`daiban keys passphrase` to keep the keys."
        )
    if state == keybackup.REMOTE:
        return _(
            "Keys are kept only in folder replicas: {url} gets the database alone; keep a copy of keys/ "
            "somewhere safe."
        ).format(url=url)
    if state == keybackup.FAILED:
        return _(
            "The keys could not be written beside the backup ({error}); the database backup goes on."
        ).format(error=detail)
    return _(
        "No recovery passphrase is set, so this backup keeps no keys (a restore would need enrolling "
        "again): set one with `daiban keys passphrase`."
    )


def cmd_restore(args: argparse.Namespace) -> int:
    from daiban.node import backup, keybackup
    from daiban.node.clock import stamp, system_clock
    from daiban.sync.recovery import restore_node
    from daiban.trust.crypto import keys_exist

    home = _home(args)
    replica = args.replica or backup.replica_from_config(home)
    if not replica:
        raise UsageError(_("give --replica: the folder or URL this node was backed up to"))
    url = backup.replica_url(replica)
    backup.refuse_occupied(home)
    passphrase = None
    if args.passphrase_stdin:
        passphrase = sys.stdin.readline()
    elif (
        not args.without_keys
        and not keys_exist(home)
        and keybackup.in_replica(backup.folder_of(url)) is not None
    ):
        if not sys.stdin.isatty():
            raise UsageError(
                _(
                    "the replica keeps this node's keys under its recovery passphrase: give it with "
                    "--passphrase-stdin, or restore --without-keys if it is lost"
                )
            )
        passphrase = _read_passphrase(False, confirm=False) or None
    done = restore_node(home, url, stamp(system_clock()), passphrase=passphrase)
    if args.json:
        _print_json(done)
        return 0
    print(
        _(
            "Restored {code} from {url} ({mode}, {seconds} s): {applications} applications, {events} events."
        ).format(
            code=done["code"],
            url=done["replica"],
            mode=done["mode"],
            seconds=done["seconds"],
            applications=done["applications"],
            events=done["events"],
        )
    )
    if done["keys_restored"]:
        print(_("The node's keys came back from the replica: it carries on as itself, no enrolling again."))
    elif passphrase is not None and not done["keys_kept"]:
        print(_("The replica keeps no keys (no recovery passphrase was set, or it is not a folder)."))
    if done["must_enroll"]:
        print(
            _(
                "This home had no keys, so new ones were made: enroll again with a fresh code from "
                "the parent (`daiban enroll URL CODE`), then run `daiban sync`."
            )
        )
        print(
            _(
                "Searching the applications filed before by ID number no longer works here: the "
                "lookup key stayed on the old PC."
            )
        )
    elif done["role"] != "city":
        print(_("Run `daiban sync` now: the node catches up with its parent before it files again."))
    if done["unopenable"]:
        print(
            _(
                "{n} personal parts were sealed to the old PC's key and can no longer be sent: "
                "file those applications again."
            ).format(n=done["unopenable"])
        )
    return 0


def cmd_divisions_list(args: argparse.Namespace) -> int:
    changes = _with_node(args, lambda node: node.division_changes())
    if getattr(args, "json", False):
        _print_json([c.as_dict() for c in changes])
    elif not changes:
        print(_("No division code has changed."))
    else:
        for c in changes:
            print(
                _("{old} -> {new} {name}, in effect from {effective} (published {at})").format(
                    old=c.old, new=c.new, name=c.name, effective=c.effective, at=c.at
                )
            )
    return 0


def cmd_divisions_change(args: argparse.Namespace) -> int:
    from daiban.node import manifest

    version = _with_node(
        args, lambda node: manifest.publish_change(node, args.old, args.new, args.name, args.effective)
    )
    if args.json:
        _print_json({"old": args.old, "new": args.new, "version": version})
    else:
        print(
            _(
                "Published manifest version {version}: {old} is now {new}. Enroll {new} at its parent, "
                "then move {old}'s children to it (README: A division code that changes)."
            ).format(version=version, old=args.old, new=args.new)
        )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from daiban.node.divisions import check_code
    from daiban.node.revocation import revoke

    serial = _with_node(args, lambda node: revoke(node, check_code(args.code)))
    if args.json:
        _print_json({"code": args.code, "serial": serial})
    else:
        print(
            _("Revoked {code} (certificate {serial}); every hop refuses it from now on.").format(
                code=args.code, serial=serial
            )
        )
    return 0


def _read_pin(from_stdin: bool) -> str:
    """The PIN from standard input, or asked for twice at the terminal."""
    if from_stdin:
        return sys.stdin.readline().strip()
    import getpass

    if not sys.stdin.isatty():
        raise UsageError(_("no terminal to ask for the PIN; use --pin-stdin"))
    pin = getpass.getpass(_("PIN (6-12 digits): "))
    if getpass.getpass(_("PIN again: ")) != pin:
        raise DaibanError(_("The two PINs differ; nothing was changed."), code="pin_mismatch")
    return pin


def cmd_agent_add(args: argparse.Namespace) -> int:
    from daiban.node import agents

    pin = _read_pin(args.pin_stdin)
    info, office = _with_node(args, lambda node: (agents.add(node, args.name, pin), node.role != "village"))
    if args.json:
        _print_json(info)
    elif office:  # at an office, the people who log in are its staff (工作人员)
        print(
            _("Staff member {name} added; they log in to `daiban tui` with their PIN.").format(
                name=info["name"]
            )
        )
    else:
        print(_("Agent {name} added; they log in to `daiban tui` with their PIN.").format(name=info["name"]))
    return 0


def cmd_agent_list(args: argparse.Namespace) -> int:
    from daiban.node import agents

    rows, office = _with_node(args, lambda node: (agents.listing(node), node.role != "village"))
    if getattr(args, "json", False):
        _print_json(rows)
    elif not rows:
        print(_("No agents yet; add one with `daiban agent add NAME`."))
    else:
        from daiban.render import agent_table

        print(agent_table(rows, staff=office))
    return 0


def cmd_agent_pin(args: argparse.Namespace) -> int:
    from daiban.node import agents

    pin = _read_pin(args.pin_stdin)
    _with_node(args, lambda node: agents.set_pin(node, args.name, pin))
    print(_("New PIN set for {name}.").format(name=args.name))
    return 0


def cmd_agent_remove(args: argparse.Namespace) -> int:
    from daiban.node import agents

    _with_node(args, lambda node: agents.remove(node, args.name))
    print(_("{name} can no longer log in here.").format(name=args.name))
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    idle_after = args.idle_after or _env_duration("DAIBAN_IDLE_AFTER")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise DaibanError(_("`daiban tui` needs a terminal; run it in a console window."), code="no_terminal")
    node = _open(args)  # refuse a missing home with one line, before the screen changes
    node.close()
    from daiban.tui.app import run

    return run(
        _home(args),
        language=i18n.language(),
        agent=args.agent or os.environ.get("DAIBAN_AGENT"),
        stale_after=args.stale_after,
        idle_after=idle_after,
    )


def cmd_report(args: argparse.Namespace) -> int:
    from daiban.node.children import DEFAULT_STALE_AFTER
    from daiban.node.report import check_period, for_node

    if args.start and args.end and args.start > args.end:
        try:
            check_period(args.start, args.end)
        except DaibanError as exc:
            raise UsageError(exc.message) from None
    after = args.stale_after or DEFAULT_STALE_AFTER
    report = _with_node(
        args, lambda node: for_node(node, start=args.start, end=args.end, by=args.by, stale_after=after)
    )
    if args.json:
        _print_json(report)
    elif args.csv:
        from daiban.render import report_csv

        sys.stdout.write(report_csv(report))
    else:
        from daiban.render import report_text

        print(report_text(report))
    return 0


# -- entry point ----------------------------------------------------------------


def _prescan_lang(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    i18n.set_language(i18n.resolve_language(_prescan_lang(argv)))
    # argparse's own messages ("usage:", "required", …) go through our catalog too.
    argparse._ = i18n._  # type: ignore[attr-defined]
    argparse.ngettext = i18n.ngettext  # type: ignore[attr-defined]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        parser.exit(2, _("%(prog)s: error: %(message)s\n") % {"prog": "daiban", "message": exc})
    except DaibanError as exc:
        sys.stderr.write(_("error: {message}").format(message=exc.message) + "\n")
        return 1
    except sqlite3.Error as exc:
        sys.stderr.write(_("error: {message}").format(message=database_problem(exc)) + "\n")
        return 1
    except BrokenPipeError:
        # The reader of our output went away (`daiban apply ... | head -1`):
        # the work is done; say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        sys.stderr.write(_("interrupted; nothing half-done was stored") + "\n")
        return 130
    except Exception as exc:  # never a traceback for an agent; the operator gets the log
        log = _log_crash(args, exc)
        sys.stderr.write(
            _(
                "error: an internal error occurred ({kind}); nothing half-done was stored. Details: {log}"
            ).format(kind=type(exc).__name__, log=log)
            + "\n"
        )
        return 1
    return 0


def _log_crash(args: argparse.Namespace, error: BaseException) -> str:
    from daiban.logs import write_crash_log

    return write_crash_log(_home(args), error)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
