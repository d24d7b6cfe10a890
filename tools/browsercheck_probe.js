// The browser check's probe (tools/browsercheck.py runs it in every page with selenium's
// execute_async_script, after browsercheck_layout.js): waits for the images and MathJax, then
// reports what the page shows.
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach(i => { if (i.loading === 'lazy') i.loading = 'eager'; });
const loaded = Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
  i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 5000); })));
const mathNodes = Array.from(document.querySelectorAll('.math'));
const mathReady = (mathNodes.length && window.MathJax && MathJax.startup && MathJax.startup.promise)
  ? Promise.race([MathJax.startup.promise.then(() => MathJax.typesetPromise ? MathJax.typesetPromise() : null),
                  new Promise(r => setTimeout(r, 10000))]).catch(() => null)
  : null;
function visible(el) {
  const r = el.getBoundingClientRect();
  if (r.width <= 0 || r.height <= 0) return false;
  for (let e = el; e; e = e.parentElement) {
    const s = getComputedStyle(e);
    if (s.display === 'none' || s.visibility === 'hidden' || s.opacity === '0') return false;
  }
  return true;
}
function folded(el) {  // inside a closed <details> or a collapsed toggle: hidden on purpose
  for (let e = el; e; e = e.parentElement) {
    if (e.tagName === 'DETAILS' && !e.open) return true;
    if (e.classList && (e.classList.contains('toggle-hidden') || e.classList.contains('hide-output'))) return true;
  }
  return false;
}
Promise.all([loaded, mathReady]).then(() => {
  done({
    title: document.title,
    images: imgs.map(i => ({src: i.currentSrc || i.src, attr: i.getAttribute('src') || '',
      complete: i.complete, width: i.naturalWidth, alt: i.alt || '',
      figure: !!i.closest('figure, .cell_output, .output, .figure'),
      visible: visible(i), folded: folded(i)})),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => ({
      attr: a.getAttribute('href'), href: a.href,
      // hidden on purpose by a style rule on the link or its list item (not by a closed menu)
      hidden: getComputedStyle(a).display === 'none' ||
              (a.parentElement.tagName === 'LI' && getComputedStyle(a.parentElement).display === 'none')})),
    math: mathNodes.length,
    mathjax: !!(window.MathJax && MathJax.startup),
    math_rendered: mathNodes.filter(n => n.querySelector('mjx-container') ||
                                        (n.tagName === 'MJX-CONTAINER')).length,
    // Formulas with an error: mjx-merror (bad LaTeX) or red text (an undefined macro).
    math_errors: mathNodes.filter(n => n.querySelector('mjx-merror, .MathJax_Error') ||
      Array.from(n.querySelectorAll('mjx-mtext')).some(
        e => (e.getAttribute('style') || '').replace(/\s/g, '').includes('color:red'))).length,
    text_length: (document.body ? document.body.innerText.length : 0),
    // Markdown tables printed as text (a table displayed as Markdown that was not parsed):
    // a paragraph, outside code, with a separator row such as |---|---|
    // what sticks out sideways and text drawn too small (browsercheck_layout.js)
    layout: camwallsLayout(arguments[0]),
    raw_tables: Array.from(document.querySelectorAll('p')).filter(
      p => !p.closest('pre, code, .highlight') && /\|\s*:?[-\u2013\u2014]+:?\s*\|/.test(p.innerText)).length,
  });
});
