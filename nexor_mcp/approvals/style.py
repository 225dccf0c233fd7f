"""The approval page's look: inline CSS only (the page fetches nothing), a system font stack,
large tap targets, and a dark palette under `prefers-color-scheme`."""

CSS = """
:root{color-scheme:light dark;--bg:#f3f4f6;--card:#fff;--ink:#111827;--muted:#4b5563;--faint:#6b7280;
--line:#e5e7eb;--well:#f9fafb;--accent:#1d4ed8;--button:#1d4ed8;--button-hover:#1e40af;--focus:#2563eb;
--warn-bg:#fff7e6;--warn-line:#f59e0b;--warn-ink:#7c2d12;--ok:#047857;--ok-bg:#ecfdf5;--no:#374151;
--no-bg:#f3f4f6;--bad:#b91c1c;--bad-bg:#fef2f2;--sent-bg:#f8fafc;--sent-line:#94a3b8}
@media (prefers-color-scheme:dark){:root{--bg:#0b0f16;--card:#131924;--ink:#e5e7eb;--muted:#a1a8b3;
--faint:#8b93a1;--line:#263041;--well:#0f141d;--accent:#60a5fa;--button:#2563eb;--button-hover:#1d4ed8;
--focus:#93c5fd;--warn-bg:#2a1f0d;--warn-line:#d97706;--warn-ink:#fcd9a8;--ok:#34d399;--ok-bg:#0c2a20;
--no:#cbd5e1;--no-bg:#1c2431;--bad:#f87171;--bad-bg:#2d1416;--sent-bg:#0f1520;--sent-line:#475569}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);font:16px/1.55 -apple-system,BlinkMacSystemFont,
"Segoe UI",Roboto,"Noto Sans","Helvetica Neue",Arial,sans-serif;-webkit-font-smoothing:antialiased}
.wrap{max-width:46rem;margin:0 auto;padding:0 1rem}
header{background:var(--card);border-bottom:1px solid var(--line)}
header .wrap{display:flex;align-items:center;justify-content:space-between;gap:1rem;min-height:3.5rem}
.brand{display:flex;align-items:center;gap:.55rem;font-weight:650;letter-spacing:-.01em}
.mark{width:1.6rem;height:1.6rem;border-radius:.45rem;background:var(--ink);color:var(--card);display:grid;
place-items:center;font-size:.95rem;font-weight:750;line-height:1}
.state{font-size:.875rem;color:var(--muted);display:flex;align-items:center;gap:.45rem}
.state::before{content:"";width:.5rem;height:.5rem;border-radius:50%;background:var(--dot,var(--faint))}
.t-pending .state{--dot:var(--warn-line)}.t-approved .state{--dot:var(--ok)}.t-refused .state{--dot:var(--bad)}
main.wrap{padding:1.75rem 1rem 3rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:1rem;padding:1.5rem;
box-shadow:0 1px 2px rgba(0,0,0,.04),0 8px 24px rgba(0,0,0,.04)}
.eyebrow{margin:0 0 .25rem;font-size:.8125rem;font-weight:600;letter-spacing:.06em;text-transform:uppercase;
color:var(--faint)}
h1{margin:0;font-size:1.75rem;line-height:1.2;letter-spacing:-.02em;font-weight:700}
h2{margin:1.75rem 0 .6rem;font-size:.8125rem;font-weight:650;letter-spacing:.06em;text-transform:uppercase;
color:var(--faint)}
p{margin:.5rem 0}
.callout{margin:1.1rem 0 0;padding:.85rem 1rem;border-radius:.75rem;background:var(--warn-bg);
border:1px solid var(--warn-line);border-left-width:.35rem;color:var(--warn-ink)}
.callout strong{display:block;font-size:1.0625rem}
.callout span{display:block;margin-top:.1rem}
.quoted{background:var(--well);border:1px solid var(--line);border-radius:.75rem;padding:.9rem 1rem;
overflow-wrap:anywhere;word-break:break-word}
.quoted .line,.quoted .item{margin:.15rem 0}
.quoted .item{padding-left:1.1em;text-indent:-1.1em}
.quoted .gap{height:.6rem}
pre{margin:0;font:.9rem/1.5 ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"DejaVu Sans Mono",
"Liberation Mono",monospace;white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word}
.sent{margin:.35rem 0 .7rem;padding:.7rem .9rem;background:var(--card);border:1px solid var(--line);
border-left:.3rem solid var(--sent-line);border-radius:.5rem;color:var(--ink);white-space:pre-wrap;font-size:1.03rem}
.note{margin:.5rem 0 0;font-size:.875rem;color:var(--faint)}
.facts{display:grid;grid-template-columns:1fr;gap:.75rem;margin:1.5rem 0 0}
.facts div{border:1px solid var(--line);border-radius:.75rem;padding:.75rem 1rem}
.facts dt{font-size:.8125rem;font-weight:650;letter-spacing:.06em;text-transform:uppercase;color:var(--faint)}
.facts dd{margin:.2rem 0 0}
.request{background:var(--well);border:1px solid var(--line);border-radius:.75rem;padding:.85rem 1rem;
font-size:.8125rem;overflow-x:auto}
.request b{font-weight:700}
.jl{display:block;padding-left:var(--i,0);text-indent:calc(-1 * var(--i,0))}
.decide{margin-top:1.75rem;padding-top:1.25rem;border-top:1px solid var(--line)}
.next{margin:0 0 1rem;font-weight:550}
.buttons{display:grid;grid-template-columns:1fr;gap:.75rem}
button{appearance:none;font:inherit;font-size:1.0625rem;font-weight:650;min-height:3.25rem;padding:.75rem 1.25rem;
border-radius:.75rem;cursor:pointer;border:2px solid transparent;width:100%}
button:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.approve{background:var(--button);color:#fff}
.approve:hover{background:var(--button-hover)}
.decline{background:transparent;color:var(--ink);border-color:var(--line)}
.decline:hover{background:var(--no-bg);border-color:var(--faint)}
.result{display:flex;gap:1rem;align-items:flex-start}
.icon{flex:none;width:2.75rem;height:2.75rem;border-radius:50%;display:grid;place-items:center;font-size:1.35rem;
font-weight:700;line-height:1;background:var(--no-bg);color:var(--no)}
.t-approved .icon{background:var(--ok-bg);color:var(--ok)}
.t-refused .icon{background:var(--bad-bg);color:var(--bad)}
.result h1{font-size:1.5rem}
.lead{font-size:1.0625rem;color:var(--ink)}
.notice{margin:1rem 0 0;padding:.7rem 1rem;border-radius:.6rem;background:var(--no-bg);color:var(--ink)}
.summary{margin:1.25rem 0 0;padding:.75rem 1rem;background:var(--well);border:1px solid var(--line);
border-radius:.75rem;overflow-wrap:anywhere}
details{margin-top:1rem}
summary{cursor:pointer;font-weight:600;color:var(--muted);padding:.35rem 0}
details .quoted,details .request{margin-top:.6rem}
a{color:var(--accent)}
.nw{white-space:nowrap}
footer{margin-top:1rem;font-size:.8125rem;color:var(--faint);text-align:center}
@media (min-width:36rem){.card{padding:2rem 2.25rem}.buttons{grid-template-columns:1fr 1fr}
.facts{grid-template-columns:1fr 1fr}h1{font-size:2rem}.result h1{font-size:1.625rem}}
@media (max-width:35.99rem){main.wrap{padding:.75rem .5rem 2rem}.card{padding:1.25rem 1rem;border-radius:.85rem}
.quoted{padding:.75rem .8rem}.result{gap:.8rem}.icon{width:2.4rem;height:2.4rem}}
"""
