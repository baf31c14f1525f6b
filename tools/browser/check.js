'use strict';
// Headless-Chromium check of the offline copy of the built book.
//
// usage: node tools/browser/check.js CONFIG.json
// CONFIG.json is written by tools/browser_check.py (which also makes the offline copy and
// the summary): {root, pages: [{path, redirect}], chromium, screenshots, out}.
//
// Serves `root` on 127.0.0.1 (any other address is blocked), opens every page at 1280 × 800
// and checks math, images, widget views, links, every slider panel and readability
// (equations and tables that do not fit, images shown smaller than drawn, an image twice
// in one cell, compute buttons without a kernel note); then loads it again at a phone's
// 390 × 844 (must load; screenshot). Records every local file the first visit loads
// (`requests`, for the page weight). Writes {notes, pages: {path: {...checks, failures,
// notes}}} to `out`. Exit status 1 on any failure.

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const ROOT = path.resolve(cfg.root);
const WAIT_MS = 30000; // for MathJax, widget rendering, images
const MOVE_MS = 5000; // for one slider move to show its image
const PAGE_MS = 300000; // for all the checks of one page
const TAB_MS = 60000; // for opening or closing a tab or the browser
const FULL_WALK_MAX = 120; // panels with at most this many settings are walked through all of them
const DESKTOP = { width: 1280, height: 800 }; // a laptop screen
const PHONE = { width: 390, height: 844 }; // a phone (iPhone 12-15 CSS pixels)
const MIN_SCALE = 0.75; // a content image shown at less than this fraction of its drawn width fails
const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic', '--disable-default-apps', '--mute-audio',
];

// Errors that the published pages have too, from upstream code, with no visible effect on
// this book. They are listed as notes; anything else fails the check.
const KNOWN = [
  {
    kind: 'pageerror', re: /^Identifier 'THEBE_JS_URL' has already been declared$/,
    why: "Jupyter Book 1 puts sphinx-thebe's `const THEBE_JS_URL` script in every page twice",
  },
  {
    kind: 'pageerror', re: /^Cannot read properties of undefined \(reading 'Queue'\)$/,
    why: 'ipywidgets typesets widget labels with the MathJax 2 API (MathJax.Hub.Queue), which ' +
      'MathJax 3 lacks (jupyter-widgets/ipywidgets#3829): TeX in widget labels stays raw',
  },
  {
    kind: 'http', re: /^404 (?:.*\/)?@jupyter-widgets\/html-manager\/dist\/[0-9a-f]{20}\.(?:woff2?|ttf|eot|svg)$/,
    why: "the widget manager asks for its Font Awesome fonts relative to the page's address, " +
      'which 404s on the published site as well (only widget icons would be missing)',
  },
];

const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.css': 'text/css', '.json': 'application/json', '.png': 'image/png', '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg', '.gif': 'image/gif', '.svg': 'image/svg+xml', '.ico': 'image/x-icon',
  '.woff': 'font/woff', '.woff2': 'font/woff2', '.ttf': 'font/ttf', '.eot': 'application/vnd.ms-fontobject',
  '.txt': 'text/plain; charset=utf-8', '.ipynb': 'application/json', '.md': 'text/markdown',
};

// A tiny static server for the offline copy (a folder URL serves its index.html).
function serve(root) {
  const server = http.createServer((req, res) => {
    let file;
    try {
      file = path.join(root, decodeURIComponent(new URL(req.url, 'http://x').pathname));
    } catch (e) {
      res.writeHead(400).end();
      return;
    }
    if (file !== root && !file.startsWith(root + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    fs.stat(file, (err, st) => {
      if (!err && st.isDirectory()) file = path.join(file, 'index.html');
      fs.readFile(file, (err2, data) => {
        if (err2) {
          res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
          return;
        }
        const type = MIME[path.extname(file).toLowerCase()] || 'application/octet-stream';
        res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' }).end(data);
      });
    });
  });
  return new Promise(resolve => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

// `promise`, or an error after `ms` (page.evaluate has no timeout of its own).
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Poll `fn` until it returns a truthy value; return that value, or null after `ms`.
async function until(fn, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) return null;
    await sleep(20);
  }
}

// ------------------------------------------------------------------ in-page probes

// Raw TeX left in the text (outside code and typeset math; hidden text such as collapsed
// solutions included) and MathJax state.
// Literal blocks with no language outside notebook cells are scanned too: a stray ```
// fence turns the markdown after it into one.
function probeMath() {
  const els = [...document.querySelectorAll('.math')];
  const untypeset = els.filter(e => !e.querySelector('mjx-container'));
  const code = 'pre, code, script, style, textarea, .highlight, .cell_input, .cell_output, .widget-subarea';
  // \( \) \[ \] $$ \begin{ \command, or $...$ around a letter or TeX (not "$5 and $10")
  const raw = /\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|\\[A-Za-z]{2,}|\$(?:[A-Za-z]|[^$\s][^$]*[\\^_{}][^$]*)\$/;
  const isMath = e => !!e && (e.matches('.math, mjx-container') || !!e.querySelector(':scope > mjx-container'));
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest('mjx-container, script, style, .widget-subarea')) continue;
    const stray = el.closest('.highlight-default') && !el.closest('.cell');
    if (el.closest(code) && !stray) continue;
    const t = n.textContent;
    // a lone $ left beside typeset math: "draws $" + math, or math + "$ buys"
    const dollar = (/\$\s*$/.test(t) && isMath(n.nextSibling)) || (/^\s*\$/.test(t) && isMath(n.previousSibling));
    if (!dollar && !raw.test(t)) continue;
    const where = stray ? 'in a literal block (stray ``` fence?): ' : '';
    bad.push(where + t.trim().replace(/\s+/g, ' ').slice(0, 80));
  }
  // MathJax errors, read from MathJax's own math list: parse errors (merror nodes) and
  // undefined macros, which the noundefined extension shows in red instead of failing.
  const merrors = [];
  const doc = window.MathJax && MathJax.startup && MathJax.startup.document;
  for (const item of (doc && doc.math) || []) {
    const tex = String(item.math).trim().slice(0, 50);
    item.root.walkTree(node => {
      if (node.isKind('merror')) merrors.push(`error in ${tex}`);
      else if (node.isKind('mtext') && node.attributes.get('mathcolor') === 'red') {
        merrors.push(`undefined macro ${node.getText ? node.getText() : '?'} in ${tex}`);
      }
    });
  }
  return {
    elements: els.length,
    typeset: els.length - untypeset.length,
    untypeset: untypeset.slice(0, 5).map(e => e.textContent.trim().slice(0, 60)),
    containers: document.querySelectorAll('mjx-container').length,
    errors: merrors.slice(0, 5),
    errorCount: merrors.length,
    rawTex: bad.slice(0, 5),
    rawTexCount: bad.length,
    version: window.MathJax && window.MathJax.version,
  };
}

// Every embedded widget view: is there a rendered widget next to its script tag?
function probeViews() {
  return [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')].map(s => {
    const area = s.previousElementSibling;
    const ok = !!area && area.classList.contains('widget-subarea');
    const text = ok ? area.textContent : '';
    return {
      rendered: ok && !!area.querySelector('.lm-Widget') && !area.querySelector('.jupyter-widgets-error-widget') &&
        !/Error displaying widget|Could not find model/.test(text),
      error: ok && /Error displaying widget|Could not find model/.test(text) ? text.trim().slice(0, 120) : null,
      model: JSON.parse(s.textContent || '{}').model_id,
    };
  });
}

function probeImages() {
  return [...document.images].map(i => ({
    src: i.currentSrc || i.src,
    complete: i.complete,
    width: i.naturalWidth,
    widget: !!i.closest('.widget-subarea'),
    // hidden: not laid out (display: none), e.g. the live-kernel result image of a panel
    hidden: !i.offsetParent,
  }));
}

function probeLinks() {
  const ids = new Set();
  for (const e of document.querySelectorAll('[id]')) ids.add(e.id);
  for (const e of document.querySelectorAll('a[name]')) ids.add(e.getAttribute('name'));
  const links = [...document.querySelectorAll('a[href], link[href]')].map(a => ({ raw: a.getAttribute('href'), url: a.href }));
  return { ids: [...ids], links };
}

// Content fingerprint of the images a panel shows now: SHA-256 of each visible image's bytes.
async function probeShown(root) {
  const out = [];
  for (const img of root.querySelectorAll('img')) {
    const r = img.getBoundingClientRect();
    if (!img.offsetParent || r.width === 0 || r.height === 0) continue;
    if (!img.complete || img.naturalWidth === 0) return 'not-loaded:' + (img.currentSrc || img.src).slice(0, 40);
    const buf = await (await fetch(img.currentSrc || img.src)).arrayBuffer();
    const h = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
    out.push([...h.slice(0, 8)].map(b => b.toString(16).padStart(2, '0')).join(''));
  }
  return out.join('+');
}

// Is there a figure (an image output outside widgets) after the panel in its section?
// Every panel needs a static twin (vqlib.widgets.small_multiples) for print / no JS.
function probeTwin(area) {
  const section = area.closest('section') || document.body;
  return [...section.querySelectorAll('.cell_output img, figure img, img.figure')].some(img =>
    !img.closest('.widget-subarea') && (area.compareDocumentPosition(img) & Node.DOCUMENT_POSITION_FOLLOWING));
}

function probeSliders(root) {
  return [...root.querySelectorAll('[role=slider]')].map(h => {
    const box = h.closest('.widget-slider, .widget-hslider, .widget-vslider') || h.parentElement;
    const label = box && box.querySelector('.widget-label');
    const readout = box && box.querySelector('.widget-readout');
    return {
      now: Math.round(parseFloat(h.getAttribute('aria-valuenow'))),
      min: Math.round(parseFloat(h.getAttribute('aria-valuemin'))),
      max: Math.round(parseFloat(h.getAttribute('aria-valuemax'))),
      label: label ? label.textContent.trim() : '',
      readout: readout ? readout.textContent.trim() : h.getAttribute('aria-valuetext'),
    };
  });
}


// Layout at the current viewport: the content column, and every display equation, inline
// equation and table that is wider than the room it has. A display equation has the box
// MathJax draws it in (as wide as its column, admonition or list item); a table has its
// scroll container, else the column; inline math has the column. What sticks out is
// `scrolled` when that box scrolls (overflow-x auto/scroll) and lies inside the column,
// else `cut`. Collapsed <details> (folded solutions) are opened while measuring.
function probeLayout() {
  if (window.__bookMarkScrollBoxes) window.__bookMarkScrollBoxes(); // _static/book.js, now
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const closed = [...article.querySelectorAll('details:not([open])')];
  closed.forEach(d => { d.open = true; });
  const cs = getComputedStyle(article);
  const a = article.getBoundingClientRect();
  const left = a.left + parseFloat(cs.paddingLeft);
  const right = a.right - parseFloat(cs.paddingRight);
  const text = el => {
    const m = el.closest('mjx-container');
    const src = m ? (m.querySelector('mjx-assistive-mml') || m) : el;
    return src.textContent.trim().replace(/\s+/g, ' ').slice(0, 70);
  };
  const scrolls = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  const inColumn = r => r.right <= right + 1 && r.left >= left - 1;
  const heading = el => {
    const section = el.closest('section');
    const h = section && section.querySelector('h1, h2, h3, h4');
    return h ? h.textContent.replace(/[#¶]/g, '').trim().slice(0, 50) : '';
  };
  // the box an item must fit in: [element that may scroll it, its inner width]
  const boxOf = (kind, el) => {
    if (kind === 'equation') return el.closest('mjx-container');
    // a table, or inline math, scrolls with its nearest scrolling ancestor that lies in the
    // column (the theme's table container, an output, the inline math's own span)
    for (let p = el.parentElement; p && p !== article; p = p.parentElement) {
      if (!p.matches('mjx-container') && scrolls(p) && inColumn(p.getBoundingClientRect())) return p;
    }
    return null;
  };
  const items = [
    ...[...article.querySelectorAll('mjx-container')].map(m => ({
      kind: m.getAttribute('display') === 'true' ? 'equation' : 'inline math', el: m.querySelector('mjx-math') || m,
    })),
    ...[...article.querySelectorAll('table')].map(t => ({ kind: 'table', el: t })),
  ];
  const out = { column: Math.round(right - left), checked: { equation: 0, 'inline math': 0, table: 0 }, cut: [], scrolled: [] };
  for (const it of items) {
    const r = it.el.getBoundingClientRect();
    if (r.width === 0 || it.el.closest('.widget-subarea')) continue;
    out.checked[it.kind] += 1;
    const box = boxOf(it.kind, it.el);
    let over, scrolled = false;
    if (box) {
      const b = box.getBoundingClientRect();
      const inner = b.width - (box.offsetWidth - box.clientWidth);  // without a vertical scrollbar
      over = Math.max(r.width - inner, inColumn(b) ? 0 : Math.max(b.right - right, left - b.left));
      scrolled = scrolls(box) && inColumn(b);
    } else {
      over = Math.max(r.right - right, left - r.left);
    }
    if (over <= 6) continue; // italic overhang, as _static/book.js counts it
    const entry = { kind: it.kind, width: Math.round(r.width), over: Math.round(over), where: heading(it.el), text: text(it.el),
      cue: !!box && box.classList.contains('scrolls-x') };
    (scrolled ? out.scrolled : out.cut).push(entry);
  }
  closed.forEach(d => { d.open = false; });
  return out;
}

// Content images (inside the article, loaded from this site, laid out): the width they are
// shown at against the width they were drawn at (the width attribute when set, e.g. a
// HiDPI figure, else the natural pixel width).
function probeScales() {
  const article = document.querySelector('article.bd-article') || document.body;
  const local = i => (i.currentSrc || i.src).startsWith(location.origin) || /^(data|blob):/.test(i.currentSrc || i.src);
  return [...article.querySelectorAll('img')]
    .filter(i => i.offsetParent && i.complete && i.naturalWidth > 0 && local(i) && i.getBoundingClientRect().width > 0)
    .map(i => {
      const drawn = parseFloat(i.getAttribute('width')) || i.naturalWidth;
      const shown = i.getBoundingClientRect().width;
      const cell = i.closest('.cell');
      return {
        drawn: Math.round(drawn), shown: Math.round(shown), scale: shown / drawn,
        widget: !!i.closest('.widget-subarea'),
        where: (cell && cell.id) || (i.currentSrc || i.src).replace(location.origin + '/', '').slice(0, 60),
      };
    });
}

// The same image (by content) twice in one cell's outputs (a figure both displayed and
// returned). Widget images are left out: a panel's stack holds one image per setting.
async function probeDuplicates() {
  const found = [];
  const cells = new Map();
  for (const img of document.querySelectorAll('.cell_output img, .output img')) {
    if (img.closest('.widget-subarea')) continue;
    const cell = img.closest('.cell') || img.closest('.cell_output');
    if (!cells.has(cell)) cells.set(cell, []);
    cells.get(cell).push(img);
  }
  for (const [cell, imgs] of cells) {
    if (imgs.length < 2) continue;
    const seen = new Map();
    for (const img of imgs) {
      const src = img.currentSrc || img.src;
      let key = src;
      try {
        const buf = await (await fetch(src)).arrayBuffer();
        const h = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
        key = [...h.slice(0, 8)].map(b => b.toString(16).padStart(2, '0')).join('');
      } catch (e) { /* an unreadable image: compare by address */ }
      if (seen.has(key)) found.push(`${(cell && cell.id) || 'a cell'}: ${src.split('/').pop().slice(0, 50)}`);
      else seen.set(key, src);
    }
  }
  return found;
}

// A panel's "compute" button works only with a running kernel: the panel must say so.
function probeComputeHints() {
  return [...document.querySelectorAll('.widget-subarea')].filter(area =>
    [...area.querySelectorAll('button')].some(b => /compute/i.test(b.textContent)) &&
    !/kernel/i.test(area.textContent)).length;
}

// ---------------------------------------------------------------------- one page

function shotName(rel, suffix = '') {
  return rel.replace(/\.html$/, '').replace(/[\\/]/g, '__') + suffix + '.png';
}

// The panel's state in one round trip: slider positions and readouts, shown images.
async function probePanel(root) {
  const probe = window.__browserCheck;
  return { sliders: probe.sliders(root), shown: await probe.shown(root) };
}

async function checkPanel(page, root, index, rel, res) {
  const handles = root.locator('[role=slider]');
  const state = () => root.evaluate(probePanel);
  const first = await state();
  const info = first.sliders;
  const panel = {
    index,
    sliders: info.map(s => ({ label: s.label, positions: s.max - s.min + 1, start: s.readout })),
    moves: 0, settings_seen: 0, distinct_images: 0, walk: 'full', ok: false,
  };
  res.panels.push(panel);
  const name = `panel ${index + 1} (${info.map(s => s.label || '?').join(', ')})`;
  if (!(await root.evaluate(probeTwin))) {
    res.failures.push(`${name}: no static twin (no figure output after the panel in its section; ` +
      'vqlib.widgets.small_multiples must be displayed, e.g. as the last expression of a cell)');
  }
  const original = first.shown;
  if (!original || original.startsWith('not-loaded')) {
    res.failures.push(`${name}: shows no loaded image (${original || 'none visible'})`);
    return;
  }
  const positionsOf = st => st.sliders.map(x => x.now);
  const describe = st => st.sliders.map(x => `${x.label}=${x.readout}`).join(', ');
  const startPos = positionsOf(first);
  const seen = new Map([[startPos.join(','), original]]); // positions -> image fingerprint
  let current = first;
  const settings = info.reduce((n, x) => n * (x.max - x.min + 1), 1);
  panel.walk = settings <= FULL_WALK_MAX ? 'full' : 'each slider alone';
  let shot = false;

  // Press an arrow key on slider k; the slider must move one step and the panel must show
  // a new image (new setting) or the image it showed before (setting seen before).
  async function move(k, dir) {
    const key = dir > 0 ? 'ArrowRight' : 'ArrowLeft';
    const want = positionsOf(current).slice();
    want[k] += dir;
    const wantKey = want.join(',');
    const before = current;
    await handles.nth(k).focus();
    await page.keyboard.press(key);
    panel.moves += 1;
    let last = before;
    const done = await until(async () => {
      last = await state();
      if (positionsOf(last).join(',') !== wantKey || !last.shown || last.shown.startsWith('not-loaded')) return null;
      return seen.has(wantKey) ? last.shown === seen.get(wantKey) : last.shown !== before.shown;
    }, MOVE_MS);
    if (!done) {
      const from = describe(before);
      if (positionsOf(last).join(',') !== wantKey) throw new Error(`${key} on slider ${info[k].label} (at ${from}) did not move it`);
      if (seen.has(wantKey)) throw new Error(`moving back to ${describe(last)} (from ${from}) does not show the image shown there before`);
      throw new Error(`moving slider ${info[k].label} from ${from} to ${describe(last)} did not change the image` +
        (last.shown.startsWith('not-loaded') ? ` (${last.shown})` : ''));
    }
    if (!seen.has(wantKey)) seen.set(wantKey, last.shown);
    current = last;
    if (!shot && want.every((p, i) => p === info[i].max)) {
      shot = true;
      await root.screenshot({ path: path.join(cfg.screenshots, shotName(rel, `.panel${index + 1}.last`)) });
    }
  }
  // Walk slider k over its whole range and back (the sliders after it through all their
  // settings at each of its positions when `deep`); returns with all at their start.
  async function walk(k, deep) {
    if (k === info.length) return;
    if (deep) await walk(k + 1, deep);
    for (const dir of [1, -1]) {
      let steps = 0;
      for (;;) {
        const p = positionsOf(current)[k];
        if (dir > 0 ? p >= info[k].max : p <= info[k].min) break;
        await move(k, dir);
        steps += 1;
        if (deep) await walk(k + 1, deep);
      }
      while (steps-- > 0) await move(k, -dir);
    }
  }
  try {
    if (panel.walk === 'full') await walk(0, true);
    else for (let k = 0; k < info.length; k++) await walk(k, false);
    const end = await state();
    if (positionsOf(end).join(',') !== startPos.join(',')) throw new Error(`sliders did not return to their start (${describe(end)})`);
    if (end.shown !== original) throw new Error('after moving every slider back, the panel does not show its original image');
    panel.ok = true;
  } catch (e) {
    res.failures.push(`${name}: ${e.message.split('\n')[0]}`);
  }
  panel.settings_seen = seen.size;
  panel.distinct_images = new Set(seen.values()).size;
  if (panel.ok && panel.distinct_images < seen.size) {
    res.notes.push(`${name}: ${seen.size} settings show only ${panel.distinct_images} different images`);
  }
}

async function checkPage(page, base, entry, res) {
  const rel = entry.path;
  const origin = new URL(base).origin;
  const known = new Map();
  const consoleErrors = new Set();
  const report = (kind, text) => {
    const k = KNOWN.find(x => x.kind === kind && x.re.test(text));
    if (k) known.set(k.why, (known.get(k.why) || 0) + 1);
    else res.failures.push(`${kind}: ${text}`);
  };
  page.on('pageerror', e => report('pageerror', e.message.split('\n')[0]));
  const answered = new Set(); // local addresses that got an HTTP error (reported once)
  let recording = true; // local files the desktop visit loads (page weight), until the panels are walked
  page.on('response', r => {
    if (recording && r.url().startsWith(origin) && r.status() < 400) {
      res._requests.add(decodeURIComponent(new URL(r.url()).pathname).slice(1));
    }
    if (r.url().startsWith(origin) && r.status() >= 400) {
      answered.add(r.url());
      report('http', `${r.status()} ${r.url().slice(origin.length + 1)}`);
    }
  });
  page.on('requestfailed', r => {
    const url = r.url();
    if (answered.has(url)) return;
    if (url.startsWith(origin)) report('requestfailed', `${url.slice(origin.length + 1)} (${r.failure().errorText})`);
    else if (!url.startsWith('data:') && !url.startsWith('blob:')) res.blocked.add(url);
  });
  page.on('console', m => {
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) consoleErrors.add(m.text().slice(0, 160));
  });

  const url = base + rel.split('/').map(encodeURIComponent).join('/');
  let tick = Date.now();
  const lap = name => {
    res.timing[name] = (Date.now() - tick) / 1000;
    tick = Date.now();
  };
  await page.goto(url, { waitUntil: 'load', timeout: 60000 });
  lap('load');

  if (entry.redirect !== null && entry.redirect !== undefined) {
    const target = new URL(entry.redirect, url).href;
    const ok = await until(() => page.url().split('#')[0] === target.split('#')[0], 10000);
    if (!ok) res.failures.push(`redirect to ${entry.redirect} did not happen (at ${page.url()})`);
    res.redirect = entry.redirect;
    return;
  }

  // Math: wait for MathJax to finish typesetting where the page has math.
  const hasMath = await page.evaluate(() => document.querySelectorAll('.math').length > 0);
  if (hasMath) {
    const loaded = await page.waitForFunction(() => window.MathJax && MathJax.startup && MathJax.startup.promise,
      null, { timeout: WAIT_MS }).then(() => true, () => false);
    if (!loaded) res.failures.push('the page has math but MathJax did not load');
    else {
      await withTimeout(page.evaluate(() => MathJax.startup.promise), WAIT_MS, 'MathJax typesetting');
      await until(() => page.evaluate(() => [...document.querySelectorAll('.math')].every(e => e.querySelector('mjx-container'))), WAIT_MS);
    }
  }

  lap('mathjax');
  // Widgets: every embedded view rendered.
  let views = await page.evaluate(probeViews);
  if (views.length) {
    await until(async () => (views = await page.evaluate(probeViews)).every(v => v.rendered || v.error), WAIT_MS);
    const why = [...consoleErrors].filter(t => /widget|model|view/i.test(t)).slice(0, 3).join(' | ');
    views.forEach((v, i) => {
      if (!v.rendered) {
        res.failures.push(`widget view ${i + 1} (model ${v.model}) not rendered` +
          `${v.error ? ': ' + v.error : ''}${why ? ` (console: ${why})` : ''}`);
      }
    });
  }
  res.widget_views = views.length;
  res.widget_views_rendered = views.filter(v => v.rendered).length;

  lap('widgets');
  // Images: load lazy ones, wait for all, every local one must have pixels.
  await page.evaluate(() => document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; }));
  await until(() => page.evaluate(() => [...document.images].every(i => i.complete)), WAIT_MS);
  const images = await page.evaluate(probeImages);
  const local = images.filter(i => i.src.startsWith(origin) || /^(blob|data):/.test(i.src));
  const external = images.filter(i => !local.includes(i));
  local.forEach(img => {
    // A hidden widget image (an empty live-kernel result) shows nothing; the images that
    // sliders reveal are checked when they are shown (panelImages).
    if (img.widget && img.hidden) return;
    if (!img.complete || img.width === 0) {
      res.failures.push(`image not loaded: ${img.widget ? 'widget image' : ''} ${img.src.replace(origin + '/', '').slice(0, 100)}`);
    }
  });
  res.images_local = local.length;
  res.images_loaded = local.filter(i => i.complete && i.width > 0).length;
  res.images_widget = local.filter(i => i.widget).length;
  res.images_external = external.map(i => i.src);

  // Math results (after widgets: their labels may hold math too).
  const math = await page.evaluate(probeMath);
  res.math_elements = math.elements;
  res.math_typeset = math.typeset;
  res.mjx_containers = math.containers;
  if (math.version) res.mathjax_version = math.version;
  if (math.typeset < math.elements) res.failures.push(`${math.elements - math.typeset} of ${math.elements} math elements not typeset, e.g. ${JSON.stringify(math.untypeset)}`);
  if (math.errorCount) res.failures.push(`${math.errorCount} MathJax errors, e.g. ${JSON.stringify(math.errors)}`);
  if (math.rawTexCount) res.failures.push(`raw TeX in the text (${math.rawTexCount}), e.g. ${JSON.stringify(math.rawTex)}`);

  // Links: kept for the check across pages at the end.
  const { ids, links } = await page.evaluate(probeLinks);
  res._ids = ids;
  res._links = links.filter(l => l.url.startsWith(origin)).map(l => ({ raw: l.raw, url: l.url.slice(origin.length + 1) }));
  res.links_local = res._links.length;
  res.links_external = links.filter(l => /^https?:/.test(l.url) && !l.url.startsWith(origin)).length;

  // Layout at 1280 px: equations and tables that stick out of the column, images shown
  // smaller than drawn, the same image twice in one cell, compute buttons without a hint.
  const layout = await page.evaluate(probeLayout);
  res.column_px = layout.column;
  res.layout_checked = layout.checked;
  res.overflow = layout.cut;
  res.scrolled = layout.scrolled;
  for (const o of layout.cut) {
    res.failures.push(`${o.kind} wider than the column (${o.width} px, ${o.over} px over${o.where ? `, in "${o.where}"` : ''}, ` +
      `no scroll box): ${o.text}`);
  }
  if (layout.scrolled.length) {
    res.notes.push(`${layout.scrolled.length} equation(s)/table(s) wider than the column scroll in their own box: ` +
      layout.scrolled.map(o => `${o.kind} "${o.text.slice(0, 30)}"`).join('; '));
  }
  for (const o of layout.scrolled.filter(x => !x.cue)) {
    res.failures.push(`${o.kind} scrolls in its box with no visible cue (no .scrolls-x from _static/book.js): ${o.text}`);
  }
  const scales = await page.evaluate(probeScales);
  res.images_scaled = scales.length;
  res.min_scale = scales.length ? Math.min(...scales.map(x => x.scale)) : null;
  for (const x of scales.filter(x => x.scale < MIN_SCALE)) {
    res.failures.push(`image shown at ${(100 * x.scale).toFixed(0)}% of its drawn width (${x.shown} of ${x.drawn} px` +
      `${x.widget ? ', widget' : ''}, ${x.where}): draw it at the size it is shown`);
  }
  res.duplicates = await withTimeout(page.evaluate(probeDuplicates), WAIT_MS, 'comparing images');
  for (const d of res.duplicates) res.failures.push(`the same image twice in one cell's output: ${d}`);
  if (await page.evaluate(probeComputeHints)) {
    res.failures.push('a panel has a compute button but does not say that it needs a running kernel');
  }
  recording = false;

  lap('images_math_links');
  // Sweep panels: every rendered widget with sliders and images.
  await page.addScriptTag({ content: `window.__browserCheck = { sliders: ${probeSliders}, shown: ${probeShown} };` });
  const areas = page.locator('.widget-subarea');
  const nAreas = await areas.count();
  for (let i = 0; i < nAreas; i++) {
    const area = areas.nth(i);
    const kinds = await area.evaluate(a => ({ sliders: a.querySelectorAll('[role=slider]').length, images: a.querySelectorAll('img').length }));
    if (kinds.sliders && kinds.images) await checkPanel(page, area, res.panels.length, rel, res);
  }

  lap('panels');
  // Full-page screenshot from the top, no focus ring (sliders are back at their start).
  await page.evaluate(() => {
    if (document.activeElement) document.activeElement.blur();
    window.scrollTo(0, 0);
  });
  await page.screenshot({ path: path.join(cfg.screenshots, shotName(rel)), fullPage: true });
  lap('screenshot');

  // The same page on a phone: it must load (math typeset, images loaded, no script error);
  // what sticks out of the column there is listed as notes; a full-page screenshot.
  await page.setViewportSize(PHONE);
  await page.goto(url, { waitUntil: 'load', timeout: 60000 });
  if (hasMath) {
    const typeset = await until(() => page.evaluate(() => window.MathJax && MathJax.startup && MathJax.startup.promise &&
      [...document.querySelectorAll('.math')].every(e => e.querySelector('mjx-container'))), WAIT_MS);
    if (!typeset) res.failures.push('phone: the math was not typeset');
  }
  await page.evaluate(() => document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; }));
  if (!(await until(() => page.evaluate(() => [...document.images].every(i => i.complete)), WAIT_MS))) {
    res.failures.push('phone: images did not finish loading');
  }
  const phone = await page.evaluate(probeLayout);
  res.phone = { column_px: phone.column, cut: phone.cut.length, scrolled: phone.scrolled.length,
    no_cue: phone.scrolled.filter(x => !x.cue).length };
  if (res.phone.no_cue) res.notes.push(`phone: ${res.phone.no_cue} scroll box(es) without the visible cue`);
  if (phone.cut.length) {
    res.notes.push(`phone (${PHONE.width} px): ${phone.cut.length} equation(s)/table(s) cut at the column edge: ` +
      phone.cut.slice(0, 6).map(o => `${o.kind} "${o.text.slice(0, 30)}"`).join('; '));
  }
  await page.screenshot({ path: path.join(cfg.screenshots, 'phone', shotName(rel)), fullPage: true });
  lap('phone');
  for (const [why, n] of known) res.notes.push(`known upstream issue (${n}×): ${why}`);
  for (const text of consoleErrors) res.notes.push(`console error: ${text}`);
}

// Links and anchors across pages: rendered ids for checked pages, else ids in the file.
function checkLinks(results) {
  const idCache = new Map();
  const idsOf = file => {
    const rel = path.relative(ROOT, file).split(path.sep).join('/');
    if (results[rel] && results[rel]._ids) return new Set(results[rel]._ids);
    if (!idCache.has(file)) {
      const text = fs.readFileSync(file, 'utf8');
      idCache.set(file, new Set([...text.matchAll(/\s(?:id|name)="([^"]+)"/g)].map(m => m[1])));
    }
    return idCache.get(file);
  };
  for (const res of Object.values(results)) {
    const broken = new Set();
    for (const link of res._links || []) {
      const u = new URL(link.url, 'http://x/');
      let file = path.join(ROOT, decodeURIComponent(u.pathname));
      if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
      if (!fs.existsSync(file)) {
        broken.add(`broken link ${link.raw}: no file ${path.relative(ROOT, file)}`);
        continue;
      }
      const anchor = decodeURIComponent(u.hash.slice(1));
      if (anchor && /\.html?$/.test(file) && !idsOf(file).has(anchor)) {
        broken.add(`broken anchor ${link.raw}: no id "${anchor}" in ${path.relative(ROOT, file)}`);
      }
    }
    res.failures.push(...broken);
  }
  for (const res of Object.values(results)) {
    delete res._ids;
    delete res._links;
  }
}

(async () => {
  fs.mkdirSync(path.join(cfg.screenshots, 'phone'), { recursive: true });
  const server = await serve(ROOT);
  const base = `http://127.0.0.1:${server.address().port}/`;
  const profiles = [];
  const output = { notes: [], pages: {} };
  let context;

  // A fresh browser with only the local server reachable: every other address (CDNs,
  // badges, fonts) is blocked.
  async function launch() {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'browser-check-profile-'));
    profiles.push(profile);
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: cfg.chromium, headless: true, args: ARGS,
      viewport: DESKTOP, deviceScaleFactor: 1, offline: false,
    });
    await ctx.route(u => !u.href.startsWith(base), route => route.abort('blockedbyclient'));
    return ctx;
  }

  // A new tab; on a busy machine Chromium has been seen to hang on this and then refuse
  // ("Failed to open a new tab"), so give it a deadline and, once, a fresh browser.
  async function newTab() {
    try {
      return await withTimeout(context.newPage(), TAB_MS, 'opening a tab');
    } catch (e) {
      output.notes.push(`restarted the browser after: ${e.message.split('\n')[0]}`);
      await withTimeout(context.close(), TAB_MS, 'closing the browser').catch(() => {});
      context = await launch();
      return await withTimeout(context.newPage(), TAB_MS, 'opening a tab in a fresh browser');
    }
  }

  try {
    context = await launch();
    for (const entry of cfg.pages) {
      const res = { failures: [], notes: [], panels: [], blocked: new Set(), timing: {}, _requests: new Set() };
      output.pages[entry.path] = res;
      const t0 = Date.now();
      const page = await newTab();
      try {
        await withTimeout(checkPage(page, base, entry, res), PAGE_MS, 'checks of this page');
      } catch (e) {
        res.failures.push(`check aborted: ${e.message.split('\n')[0]}`);
      } finally {
        await withTimeout(page.close(), TAB_MS, 'closing the tab').catch(() => {});
      }
      res.blocked = [...res.blocked];
      res.requests = [...res._requests].sort();
      delete res._requests;
      if (res.blocked.length) res.notes.push(`blocked (not loaded offline): ${res.blocked.join(', ')}`);
      res.seconds = (Date.now() - t0) / 1000;
      const moves = res.panels.reduce((n, p) => n + p.moves, 0);
      console.log(`[browser-check] ${entry.path}: ${res.failures.length ? 'FAIL' : 'ok'} ` +
        `(${res.seconds.toFixed(1)} s${res.panels.length ? `, ${res.panels.length} panel(s), ${moves} slider moves` : ''})`);
    }
    checkLinks(output.pages);
  } catch (e) {
    output.notes.push(`browser run aborted: ${e.message.split('\n')[0]}`);
    console.error(`[browser-check] FAIL: ${e.message}`);
    for (const entry of cfg.pages) {
      const res = output.pages[entry.path] || (output.pages[entry.path] = { failures: [], notes: [], panels: [] });
      if (!res.failures.length) res.failures.push(`browser run aborted: ${e.message.split('\n')[0]}`);
    }
  } finally {
    if (context) await withTimeout(context.close(), TAB_MS, 'closing the browser').catch(() => {});
    server.close();
    for (const profile of profiles) fs.rmSync(profile, { recursive: true, force: true });
  }
  fs.writeFileSync(cfg.out, JSON.stringify(output, null, 1));
  const failed = Object.values(output.pages).some(r => r.failures.length);
  process.exit(failed ? 1 : 0);
})();
