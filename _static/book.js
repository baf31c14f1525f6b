// The book's own script (Jupyter Book adds every .js file of _static/ to every page).
// Marks every box that scrolls sideways and holds more than it shows (.scrolls-x), and the
// side on which more is hidden (.more-left, .more-right); _static/book.css fades that side
// and draws a thin scrollbar. Run on load, after MathJax has typeset, on resize and scroll.
(function () {
  'use strict';
  var SELECTOR = 'div.math mjx-container, span.math, .pst-scrollable-table-container, ' +
    'div.cell_output .output.text_html';

  // a few pixels of italic overhang are not "more to see"
  var SLACK = 6;

  function mark(el) {
    var hidden = el.scrollWidth - el.clientWidth;
    var more = hidden > SLACK;
    el.classList.toggle('scrolls-x', more);
    el.classList.toggle('more-left', more && el.scrollLeft > SLACK);
    el.classList.toggle('more-right', more && el.scrollLeft < hidden - SLACK);
  }

  function markAll() {
    document.querySelectorAll(SELECTOR).forEach(mark);
  }

  document.addEventListener('scroll', function (event) {
    var el = event.target;
    if (el && el.matches && el.matches(SELECTOR)) mark(el);
  }, true);
  window.addEventListener('resize', markAll);
  window.addEventListener('load', function () {
    markAll();
    var mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) mj.startup.promise.then(markAll);
    setTimeout(markAll, 1500); // widgets and late fonts change widths too
  });
  window.__bookMarkScrollBoxes = markAll;
})();
