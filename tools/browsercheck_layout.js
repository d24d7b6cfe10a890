// The browser check's layout probe (tools/browsercheck.py prepends it to the page probe and runs
// it again at every other window width): what sticks out sideways, and text drawn too small.
//
// camwallsLayout(minFontPx) returns
//   {viewport, page_width: the document's scrollWidth (> viewport: the page scrolls sideways),
//    column: the content column's width, wide: [{what, text, overflow, kind}],
//    scrolled_tables: [{what, text, hidden}], small_text: [{what, text, size}],
//    emoji: [{what, text}] (pictographs, drawn as empty boxes where no emoji font is installed)}.
// An element is "wide" when it runs past the right or left edge of the content column (the
// article), or past the window, and no element between it and the column scrolls sideways
// (overflow-x auto or scroll: a box of its own, which is fine); only the outermost such element
// is listed. Small text: visible text whose computed font-size is below minFontPx (text drawn
// inside images and MathJax's glyphs, which are CSS pseudo-elements, cannot be measured here).
function camwallsLayout(minFontPx) {
  const root = document.documentElement;
  const viewport = root.clientWidth;
  const column = document.querySelector('article') ||
    document.querySelector('main, [role="main"]') || document.body;
  const col = column.getBoundingClientRect();
  const styleOf = new Map();
  const style = e => {
    let s = styleOf.get(e);
    if (!s) { s = getComputedStyle(e); styleOf.set(e, s); }
    return s;
  };
  const scrolls = e => ['auto', 'scroll'].includes(style(e).overflowX);
  // Whether an element sits in a sideways-scrolling box below `top` (memoised per element).
  const boxedMemo = new Map();
  function boxed(el, top) {
    const p = el.parentElement;
    if (!p || p === top) return false;
    if (boxedMemo.has(p)) return boxedMemo.get(p);
    const b = scrolls(p) || boxed(p, top);
    boxedMemo.set(p, b);
    return b;
  }
  function shown(el) {
    for (let e = el; e; e = e.parentElement) {
      const s = style(e);
      if (s.display === 'none' || s.visibility === 'hidden' || s.opacity === '0') return false;
      if (e.tagName === 'DETAILS' && !e.open && el !== e && !el.closest('summary')) return false;
      const cl = e.classList;
      if (cl && (cl.contains('toggle-hidden') || cl.contains('hide-output'))) return false;
    }
    return true;
  }
  // Cut by code points, not UTF-16 units: half a surrogate pair cannot be sent back to Python.
  const clip = (text, n) =>
    Array.from((text || '').replace(/\s+/g, ' ').trim()).slice(0, n).join('');
  // Fixed elements (the theme's drawers, hidden off-screen on a phone) never widen the page.
  const fixedMemo = new Map();
  function fixed(el) {
    if (!el || el === document.body) return false;
    if (fixedMemo.has(el)) return fixedMemo.get(el);
    const f = style(el).position === 'fixed' || fixed(el.parentElement);
    fixedMemo.set(el, f);
    return f;
  }
  function describe(el) {
    const name = typeof el.className === 'string' ? el.className : '';
    const cls = name.trim().split(/\s+/).filter(Boolean).slice(0, 2);
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + cls.map(c => '.' + c).join('');
  }
  // Elements placed outside the column on purpose by the theme (margin notes, full-width cells).
  const onPurpose = '.margin, aside, .sidebar, .marginnote, .sidenote, .full-width, .full_width, ' +
                    '.tag_margin, .tag_popout, .tag_full-width, .tag_full_width, mjx-assistive-mml';
  const wide = [];
  const listed = [];
  const check = (el, left, right, kind) => {
    if (wide.length >= 12 || listed.some(w => w.contains(el))) return;
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) return;
    // Past the window's left edge is out of reach, but does not widen the page.
    const over = kind === 'column' ? Math.max(r.right - right, left - r.left) : r.right - right;
    if (over <= 1) return;
    if (boxed(el, kind === 'column' ? column : null) || el.closest(onPurpose) || !shown(el)) return;
    if (kind === 'window' && fixed(el)) return;
    const caption = el.tagName === 'TABLE' && el.caption ? el.caption.innerText : '';
    listed.push(el);
    wide.push({what: describe(el), kind: kind, overflow: Math.round(over),
               text: clip(caption || el.innerText || el.getAttribute('alt'), 60)});
  };
  for (const el of column.querySelectorAll('*')) check(el, col.left, col.right, 'column');
  const pageWidth = root.scrollWidth;
  if (pageWidth > viewport + 1) {  // find what makes the page wider than the window
    for (const el of document.body.querySelectorAll('*')) check(el, 0, viewport, 'window');
  }
  // Tables that sit in a sideways-scrolling box and need it at this width: part of them is out
  // of sight until the reader scrolls (fine on a phone, not on a laptop: browsercheck.py decides).
  const scrolled = [];
  for (const t of column.querySelectorAll('table')) {
    if (scrolled.length >= 12) break;
    let box = null;
    for (let e = t.parentElement; e && e !== column; e = e.parentElement) {
      if (scrolls(e)) { box = e; break; }
    }
    if (!box || box.scrollWidth <= box.clientWidth + 1 || !shown(t)) continue;
    if (box.getBoundingClientRect().width <= 0) continue;
    scrolled.push({what: describe(t), hidden: box.scrollWidth - box.clientWidth,
                   text: clip(t.caption ? t.caption.innerText : t.innerText, 60)});
  }
  const small = [];
  const emoji = [];
  const seen = new Set();
  // Emoji pictographs (and the check marks drawn as emoji) are boxes without an emoji font.
  const pictograph = /[\u2705\u274c\u274e\u2714\u2716\u2b50\u{1F300}-\u{1FAFF}]/u;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node && small.length < 12; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || seen.has(el) || !node.data.trim()) continue;
    seen.add(el);
    if (el.closest('script, style, noscript, template, title, mjx-assistive-mml, ' +
                   '.visually-hidden, .sr-only')) continue;
    if (emoji.length < 12 && pictograph.test(node.data) && shown(el)) {
      emoji.push({what: describe(el), text: clip(node.data, 40)});
    }
    const size = parseFloat(style(el).fontSize);
    if (!(size < minFontPx)) continue;
    const r = el.getBoundingClientRect();
    if (r.width <= 1 || r.height <= 1 || !shown(el)) continue;
    small.push({what: describe(el), size: Math.round(size * 10) / 10,
                text: clip(node.data, 40)});
  }
  return {viewport: viewport, page_width: pageWidth, column: Math.round(col.width), wide: wide,
          scrolled_tables: scrolled, small_text: small, emoji: emoji};
}
