"""The text of a CSV file a shop saved from Excel: shared by the catalogue import and the review import."""

from __future__ import annotations


def csv_text(data: bytes) -> str:
    """A CSV file's text: UTF-8 (with or without Excel's BOM), or a UnicodeDecodeError saying how to fix it."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 ({exc.reason} at byte {exc.start})"
        try:
            data.decode("gb18030")
        except UnicodeDecodeError:
            pass
        else:
            reason += (
                "; it looks like GBK, Excel's default on Chinese Windows: save it again as "
                "'CSV UTF-8 (逗号分隔)', or convert it with `iconv -f GBK -t UTF-8`"
            )
        raise UnicodeDecodeError(exc.encoding, exc.object, exc.start, exc.end, reason) from None
