"""Reading a ledger of many applications (台账): CSV in UTF-8 or in GBK as Excel
in China saves it, or XLSX. Columns ``item,name,id_number,phone``, optional
``region`` and ``missing``, then the item's fields by key or by their Chinese
title. Chinese headers (事项编码, 姓名, 身份证号, 联系电话 …) are understood too.

A ledger is held within bounds before it is parsed: its size on disk, the
number of rows, and for an XLSX (a zip of XML files) the number of members
and what they declare they inflate to, read from the zip's central directory
before openpyxl opens anything. Python's zipfile never inflates a member past
its declared size, so a zip bomb is refused at the door, in milliseconds."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from daiban.errors import DaibanError, NotFound
from daiban.i18n import _
from daiban.node.applications import Filing

ALIASES = {
    "item": ("item", "事项", "事项编码", "事项代码"),
    "name": ("name", "姓名", "申请人", "申请人姓名"),
    "id_number": ("id_number", "身份证号", "身份证号码", "公民身份号码"),
    "phone": ("phone", "电话", "手机", "手机号", "联系电话"),
    "region": ("region", "区划", "区划代码", "地区"),
    "missing": ("missing", "容缺", "容缺材料", "缺少材料"),
    "guardian_name": ("guardian_name", "监护人", "监护人姓名"),
    "guardian_id_number": ("guardian_id_number", "监护人身份证号", "监护人身份证号码"),
    "guardian_relation": ("guardian_relation", "监护关系", "与申请人关系"),
    "delivery": ("delivery", "送达方式"),
    "address": ("address", "邮寄地址", "送达地址"),
}
DELIVERY_WORDS = {"post": "post", "邮寄": "post", "pickup": "pickup", "自取": "pickup", "": "pickup"}
_BY_ALIAS = {alias: key for key, aliases in ALIASES.items() for alias in aliases}
_SPLIT = re.compile(r"[;；、,，|]")
MAX_ROWS = 100_000
# A 100,000-row ledger of Chinese names and a few fields is about 15 MB as CSV.
MAX_BYTES = 32 * 1024 * 1024
# An XLSX: members (a workbook of a few sheets has a dozen or two), what they
# inflate to in all, and how far one member larger than MIN_RATIO_CHECK may
# inflate (sheets of people's rows compress 5 to 20 times; a bomb 1000).
MAX_MEMBERS = 1000
MAX_INFLATED = 128 * 1024 * 1024
MAX_RATIO = 100
MIN_RATIO_CHECK = 1024 * 1024


@dataclass
class Ledger:
    name: str
    digest: str
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]


def read(path: Path) -> Ledger:
    data = _bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    numeric: dict[str, tuple[int, str]] = {}
    if data[:4] == b"PK\x03\x04":
        _check_zip(data, path)
        header, rows = _read_xlsx(data, path, numeric)
    else:
        header, rows = _read_csv(data, path)
        numeric = _scientific(rows)
    if numeric:
        raise _numbers_not_text(path, numeric)
    missing = [k for k in ("item", "name", "id_number", "phone") if k not in header]
    if missing:
        raise DaibanError(
            _(
                "Ledger {path} lacks the columns: {columns}. The first row must name the "
                "columns item,name,id_number,phone, then the item's fields."
            ).format(path=path.name, columns=", ".join(missing)),
            code="ledger",
        )
    return Ledger(path.name, digest, header, rows)


def _bytes(path: Path) -> bytes:
    """The file's bytes, refused unread if it is larger than a ledger can be."""
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            if size > MAX_BYTES:
                raise _too_large(path)
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise NotFound(_("Ledger file {path} does not exist.").format(path=path)) from None
    except IsADirectoryError:
        raise DaibanError(_("{path} is a folder, not a ledger file.").format(path=path)) from None
    except OSError as exc:
        raise DaibanError(_("Cannot read {path}: {error}").format(path=path, error=exc.strerror)) from None
    if len(data) > MAX_BYTES:  # a file that grew, or a pipe
        raise _too_large(path)
    return data


def _too_large(path: Path) -> DaibanError:
    return DaibanError(
        _("Ledger {path} is larger than {mb} MB; split it into smaller ledgers.").format(
            path=path.name, mb=MAX_BYTES // (1024 * 1024)
        ),
        code="ledger",
    )


def _too_many_rows(path: Path) -> DaibanError:
    return DaibanError(
        _("A ledger may hold at most {n} rows; split {path}.").format(n=MAX_ROWS, path=path.name),
        code="ledger",
    )


def _check_zip(data: bytes, path: Path) -> None:
    """Refuse an XLSX whose zip would inflate past the bounds, from its
    central directory alone (nothing is inflated here)."""
    # Each central directory record begins with this signature, so its count
    # bounds the records zipfile would build objects for: a directory of
    # 700,000 empty members fits in the byte limit.
    records = data.count(b"PK\x01\x02")
    if records > MAX_MEMBERS:
        raise _too_inflated(path, 0, records)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise DaibanError(
            _("Ledger {path} is not a readable XLSX workbook ({error}).").format(
                path=path.name, error="BadZipFile"
            ),
            code="ledger",
        ) from None
    inflated = sum(m.file_size for m in members)
    steep = any(
        m.file_size > MIN_RATIO_CHECK and m.file_size > MAX_RATIO * max(m.compress_size, 1) for m in members
    )
    if len(members) > MAX_MEMBERS or inflated > MAX_INFLATED or steep:
        raise _too_inflated(path, inflated, len(members))


def _too_inflated(path: Path, inflated: int, members: int) -> DaibanError:
    return DaibanError(
        _(
            "Ledger {path} would unpack to {mb} MB in {n} parts; a ledger may unpack to at most "
            "{max_mb} MB in {max_n} parts, each at most {ratio} times its packed size. It was "
            "refused unopened: save it again as XLSX or CSV, or split it."
        ).format(
            path=path.name,
            mb=inflated // (1024 * 1024),
            n=members,
            max_mb=MAX_INFLATED // (1024 * 1024),
            max_n=MAX_MEMBERS,
            ratio=MAX_RATIO,
        ),
        code="ledger",
    )


def _normal_header(cells: list[str]) -> list[str]:
    return [_BY_ALIAS.get(c.strip().lower(), _BY_ALIAS.get(c.strip(), c.strip())) for c in cells]


def _decode(data: bytes) -> str:
    # UTF-8 (with or without the BOM Excel writes), else GBK as a Chinese
    # Excel saves "CSV"; GB18030 is GBK's superset.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DaibanError(_("The ledger is neither UTF-8 nor GBK text; save it again as CSV UTF-8 or XLSX."))


def _read_csv(data: bytes, path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = _normal_header(next(reader))
    except StopIteration:
        raise DaibanError(_("Ledger {path} is empty.").format(path=path.name), code="ledger") from None
    except csv.Error as exc:
        raise DaibanError(
            _("Ledger {path} is not valid CSV: {error}").format(path=path.name, error=exc)
        ) from None
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise _too_many_rows(path)
            rows.append((reader.line_num, _row(header, cells)))
    except csv.Error as exc:
        raise DaibanError(
            _("Ledger {path} is not valid CSV near line {line}: {error}").format(
                path=path.name, line=reader.line_num, error=exc
            )
        ) from None
    return header, rows


# Columns Excel must keep as text: as numbers, an 18-digit ID number loses its
# last digits (a float holds 15 to 17) and a landline its leading zero.
TEXT_COLUMNS = ("id_number", "phone")
_SCIENTIFIC = re.compile(r"^[+-]?\d+(\.\d+)?[eE][+-]?\d+$")
MOBILE = re.compile(r"^1\d{10}$")


def _scientific(rows: list[tuple[int, dict[str, str]]]) -> dict[str, tuple[int, str]]:
    """In a CSV, the text-only columns whose numbers Excel already cut
    (saved as 3.70303E+17): {column: (first row, its text)}."""
    found: dict[str, tuple[int, str]] = {}
    for line, row in rows:
        for key in TEXT_COLUMNS:
            if key not in found and _SCIENTIFIC.match(row.get(key, "")):
                found[key] = (line, row[key])
    return found


def _numbers_not_text(path: Path, numeric: dict[str, tuple[int, str]]) -> DaibanError:
    """One line for the whole ledger: which column Excel turned into numbers,
    where first, and the fix."""
    labels = {"id_number": _("ID number"), "phone": _("phone")}
    key = "id_number" if "id_number" in numeric else next(iter(numeric))
    line, shown = numeric[key]
    return DaibanError(
        _(
            "Ledger {path}: Excel stored the {column} column as numbers (row {line}: {value}), which "
            "cuts their last digits or leading zeros. Set the column's format to 文本 (Text), type "
            "the numbers again, save, and import again; nothing was stored."
        ).format(path=path.name, column=labels[key], line=line, value=shown),
        code="ledger_numbers",
    )


def _read_xlsx(
    data: bytes, path: Path, numeric: dict[str, tuple[int, str]]
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The rows as text; ``numeric`` gets the text-only columns (ID number,
    phone) that hold number cells — a landline's leading zero or an ID
    number's last digits are gone from those; a mobile number is whole."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise DaibanError(
            _("Ledger {path} is not a readable XLSX workbook ({error}).").format(
                path=path.name, error=type(exc).__name__
            )
        ) from None
    try:
        sheet = book.worksheets[0]
        it = sheet.iter_rows(values_only=True)
        try:
            header = _normal_header([_cell(c) for c in next(it)])
        except StopIteration:
            raise DaibanError(_("Ledger {path} is empty.").format(path=path.name), code="ledger") from None
        rows: list[tuple[int, dict[str, str]]] = []
        watch = {i: key for i, key in enumerate(header) if key in TEXT_COLUMNS}
        for number, values in enumerate(it, start=2):
            cells = [_cell(c) for c in values]
            if any(cells):
                if len(rows) >= MAX_ROWS:
                    raise _too_many_rows(path)
                rows.append((number, _row(header, cells)))
                for i, key in watch.items():
                    value = values[i] if i < len(values) else None
                    is_number = isinstance(value, int | float) and not isinstance(value, bool)
                    if is_number and key not in numeric and not (key == "phone" and MOBILE.match(cells[i])):
                        numeric[key] = (number, f"{value:.6g}" if isinstance(value, float) else str(value))
        return header, rows
    except DaibanError:
        raise
    except Exception as exc:  # a damaged sheet (bad XML, a member that fails its CRC) shows only now
        raise DaibanError(
            _("Ledger {path} is not a readable XLSX workbook ({error}).").format(
                path=path.name, error=type(exc).__name__
            )
        ) from None
    finally:
        book.close()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def _row(header: list[str], cells: list[str]) -> dict[str, str]:
    row = {}
    for i, key in enumerate(header):
        if key:
            row[key] = cells[i].strip() if i < len(cells) else ""
    return row


def filings(
    ledger: Ledger, titles: dict[str, dict[str, str]], *, allow_unchecked_uscc: bool = False
) -> Iterator[tuple[int, Filing]]:
    """Turn ledger rows into filings. ``titles`` maps each item code to its
    fields' {title: key}, so a column may be headed 户口性质 or hukou_type."""
    fixed = set(ALIASES)
    for line, row in ledger.rows:
        item = row.get("item", "").strip().upper()
        by_title = titles.get(item, {})
        fields = {by_title.get(k, k): v for k, v in row.items() if k not in fixed and v != ""}
        yield (
            line,
            Filing(
                item=item,
                name=row.get("name", ""),
                id_number=row.get("id_number", ""),
                phone=row.get("phone", ""),
                region=row.get("region") or None,
                fields=fields,
                missing=[m for m in _SPLIT.split(row.get("missing", "")) if m.strip()],
                allow_unchecked_uscc=allow_unchecked_uscc,
                guardian={
                    "name": row.get("guardian_name", ""),
                    "id_number": row.get("guardian_id_number", ""),
                    "relation": row.get("guardian_relation", ""),
                },
                delivery=DELIVERY_WORDS.get(row.get("delivery", "").strip().lower(), row.get("delivery", "")),
                address=row.get("address", ""),
            ),
        )
