#!/usr/bin/env bash
# Reproduces assets/fonts/NotoSansSC-*-subset.otf, the fonts embedded in the consultation PDFs
# (src/summary/font.rs), from Debian's fonts-noto-cjk package (Noto Sans CJK SC, SIL Open Font
# License 1.1, assets/fonts/OFL.txt) with fontTools' subsetter.
#
# What is kept: every character of GB2312 (its 6,763 hanzi and its symbol rows: full-width
# forms, CJK punctuation, Greek, Cyrillic, kana, box drawing), ASCII, Latin-1, general
# punctuation, and a few symbols clinical text uses (℃ µ ± × ÷ ≤ ≥ ≈ ‰ → ①-⑳ ↑ ↓ ½ ¼ ¾ ™ ® ©
# № and the replacement mark U+25A1 □ printed for any character outside the subset).
# No hinting, no layout features beyond kerning, no glyph names: the PDF needs outlines and
# advances.
#
# Usage: scripts/subset-font.sh   (as root on Debian: installs fonts-noto-cjk and fonttools)
# The versions are pinned so that the output is byte-for-byte the committed one.
set -euo pipefail

NOTO_DEB_VERSION="1:20220127+repack1-1"
FONTTOOLS_VERSION="4.68.0"
SRC_DIR=/usr/share/fonts/opentype/noto
# Index of "Noto Sans CJK SC" inside the collection (JP, KR, SC, TC, HK, then the Mono ones).
SC_INDEX=2

cd "$(dirname "$0")/.."
OUT=assets/fonts

if [ "$(dpkg-query -W -f='${Version}' fonts-noto-cjk 2>/dev/null || true)" != "$NOTO_DEB_VERSION" ]; then
  apt-get install -y -qq "fonts-noto-cjk=$NOTO_DEB_VERSION"
fi
if [ "$(python3 -c 'import fontTools; print(fontTools.version)' 2>/dev/null || true)" != "$FONTTOOLS_VERSION" ]; then
  python3 -m pip install -q "fonttools==$FONTTOOLS_VERSION"
fi

UNICODES="$(mktemp)"
trap 'rm -f "$UNICODES"' EXIT
python3 - "$UNICODES" <<'PY'
import sys
cps = set()
# GB2312: rows 0xA1-0xF7, cells 0xA1-0xFE; unassigned cells do not decode.
for row in range(0xA1, 0xF8):
    for cell in range(0xA1, 0xFF):
        try:
            cps.add(ord(bytes([row, cell]).decode("gb2312")))
        except UnicodeDecodeError:
            pass
cps.update(range(0x20, 0x7F))            # ASCII
cps.update(range(0xA0, 0x100))           # Latin-1
cps.update(range(0x2000, 0x2070))        # general punctuation
cps.update(range(0x3000, 0x3040))        # CJK symbols and punctuation
cps.update(range(0xFF01, 0xFF5F))        # full-width forms
cps.update(range(0x2460, 0x2474))        # circled numbers 1-20
cps.update(map(ord, "℃℉µμ±×÷≤≥≈≠‰→←↑↓½¼¾™®©№°′″□■●○▲△◆◇★☆✓✗·•…"))
with open(sys.argv[1], "w") as f:
    f.write(",".join("U+%04X" % c for c in sorted(cps)))
PY

for weight in Regular Bold; do
  python3 -m fontTools.subset "$SRC_DIR/NotoSansCJK-$weight.ttc" \
    --font-number="$SC_INDEX" \
    --unicodes-file="$UNICODES" \
    --layout-features='kern' \
    --no-hinting --desubroutinize=false --drop-tables+=DSIG,vhea,vmtx,VORG \
    --name-IDs='0,1,2,3,4,5,6' --name-languages='*' \
    --output-file="$OUT/NotoSansSC-$weight-subset.otf"
done
ls -l "$OUT"/NotoSansSC-*-subset.otf
