"""The console's one stylesheet, inlined in every page and allowed by its hash, so the
Content-Security-Policy can refuse every other style, script and resource."""

from __future__ import annotations

import base64
import hashlib

STYLE = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:.5rem 1.5rem;display:flex;gap:1.25rem;
align-items:center;flex-wrap:wrap}
header a{color:#fff;
text-decoration:none}header a:hover,header a:focus{text-decoration:underline}
header .brand{font-weight:700;margin-right:.5rem}
header form{margin-left:auto;display:flex;gap:.25rem}
header input[type=search]{width:22rem;max-width:60vw;padding:.3rem .5rem;border:0;
border-radius:3px}
main{padding:1rem 1.5rem 3rem;max-width:90rem}
h1{font-size:1.35rem;margin:.25rem 0 .75rem}h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
a{color:#0b5cad}
.muted,.age{color:#5d6577}.age{font-size:12px}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:.5rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e3e6ec;vertical-align:top}
th{background:#eceff4;font-weight:600}
code,pre,textarea{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#f0f2f5;padding:.5rem;overflow:auto;max-height:30rem;margin:.25rem 0}
textarea{width:100%;min-height:16rem;padding:.5rem}
.chip{display:inline-block;border-radius:3px;padding:0 .4rem;font-size:12px;font-weight:600;
border:1px solid rgba(0,0,0,.35);white-space:nowrap}
.tone-good{background:#009e73;color:#fff}
.tone-progress{background:#56b4e9;color:#102030}
.tone-waiting{background:#e69f00;color:#1d1300}
.tone-user{background:#cc79a7;color:#1d0a14}
.tone-failed{background:#d55e00;color:#fff}
.tone-quiet{background:#d9dce3;color:#1d2330}
.bar.tone-good{fill:#009e73}.bar.tone-progress{fill:#56b4e9}.bar.tone-waiting{fill:#e69f00}
.bar.tone-user{fill:#cc79a7}.bar.tone-failed{fill:#d55e00}.bar.tone-quiet{fill:#b8bcc6}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}
.tiles{display:flex;flex-wrap:wrap;gap:.6rem;margin-bottom:.5rem}
.tile{background:#fff;border:1px solid #dde1e8;border-left:6px solid #0072b2;
padding:.45rem .8rem;min-width:10rem}
.tile.alarm{border-left-color:#d55e00}
.tile b{font-size:1.35rem;display:block}
.tile a{text-decoration:none;
color:inherit}.tile a:hover b,.tile a:focus b{text-decoration:underline}
.notice{background:#e6f4ee;border:1px solid #009e73;padding:.5rem .75rem;margin-bottom:.75rem}
.problem{background:#fbece4;border:1px solid #d55e00;padding:.5rem .75rem;margin-bottom:.75rem}
.empty{padding:.75rem;background:#fff;border:1px solid #e3e6ec}
form.inline{display:inline}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end;background:#fff;
padding:.6rem;border:1px solid #e3e6ec;margin-bottom:.75rem}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:#5d6577}
input,select{font:inherit;padding:.25rem .35rem}
button{font:inherit;padding:.3rem .8rem;border:1px solid #0b5cad;background:#0b5cad;color:#fff;
border-radius:3px;cursor:pointer}
button.secondary{background:#fff;color:#0b5cad}
button.danger{background:#b34400;border-color:#b34400}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;background:#fff;
padding:.6rem;border:1px solid #e3e6ec;margin:0}
dl.facts dt{color:#5d6577}dl.facts dd{margin:0}
ol.timeline{list-style:none;padding:0;margin:0}
ol.timeline li{background:#fff;border:1px solid #e3e6ec;border-left:4px solid #b8bcc6;
padding:.4rem .6rem;margin-bottom:.35rem}
ol.timeline li.current{border-left-color:#1d2330}
summary{cursor:pointer;color:#0b5cad}
.pager{margin:.5rem 0;display:flex;gap:1rem}
""".strip()
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
