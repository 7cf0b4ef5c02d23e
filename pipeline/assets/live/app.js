// earshot live dashboard: one EventSource on /live/events, three event kinds.
//   snapshot: brands (rate, negative share, last 300 s of counts), queues, active spikes
//   mention:  one routed mention, for the feed
//   spike:    a spike started, updated or ended
// Every piece of data reaches the page through textContent or an SVG attribute, never as
// markup: post texts are written by strangers.
'use strict';

(function () {
  const FEED_ROWS = 200; // rows shown
  const FEED_KEPT = 1000; // mentions kept so a filter change can refill the feed
  const ENDED_SHOWN_MS = 2 * 60 * 1000; // an ended spike stays listed, dimmed, this long
  const STALE_MS = 5000; // snapshots come every second; this much silence is worth saying
  const RETRY_MS = 3000; // when the browser gives up reconnecting on its own
  const BUCKET_S = 5; // sparkline bar width, seconds
  const POSTS_SHOWN = 3; // top posts per spike before "more"
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const state = {
    brands: [], // the latest snapshot's brands
    queues: [],
    active: new Map(), // "brand:series" → spike document
    ended: new Map(), // "brand:series" → {doc, at}
    mentions: [], // newest first
    unrendered: [], // arrived since the last feed flush, oldest first
    flushScheduled: false,
    paused: false,
    pausedNew: 0,
    brandQueues: new Map(), // brand → Set of queues its mentions were routed to
    filter: { brand: '', queue: '' },
    lastMessage: 0,
    connected: false,
    skipped: 0,
    cards: new Map(), // brand → card parts
    spikeEls: new Map(), // key → {li, sig}
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  // Only http(s) links: a `javascript:` URL in a post must not become a link.
  function safeUrl(u) {
    if (typeof u !== 'string') return null;
    try {
      const url = new URL(u);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  function link(href, text, cls) {
    const url = safeUrl(href);
    if (!url) return el('span', cls, text);
    const a = el('a', cls, text);
    a.href = url;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    return a;
  }

  const pad = (n) => String(n).padStart(2, '0');
  function clock(t) {
    const d = new Date(t);
    if (isNaN(d)) return '—';
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function ago(t) {
    const s = Math.max(0, Math.round((Date.now() - new Date(t).getTime()) / 1000));
    if (!isFinite(s)) return '';
    if (s < 2) return 'just now';
    if (s < 60) return s + ' s ago';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + pad(s % 60) + ' s ago';
    return Math.floor(m / 60) + ' h ' + pad(m % 60) + ' min ago';
  }

  function rate(r) {
    if (typeof r !== 'number' || !isFinite(r)) return '—';
    return r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString('en');
  }

  function percent(share) {
    if (typeof share !== 'number' || !isFinite(share)) return '—';
    return Math.round(share * 100) + '%';
  }

  function compact(n) {
    if (typeof n !== 'number') return '';
    if (n >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (n >= 1e3) return (n / 1e3).toFixed(1) + 'k';
    return String(n);
  }

  function urgencyClass(u) {
    if (typeof u !== 'number') return 'urgency';
    return 'urgency ' + (u >= 70 ? 'u-high' : u >= 40 ? 'u-mid' : 'u-low');
  }

  // Handles read as @handle; a long opaque id (a Bluesky DID) is shortened, whole in the title.
  function handle(author) {
    if (!author) return 'post';
    const a = String(author);
    if (a.startsWith('did:') && a.length > 20) return a.slice(0, 14) + '…' + a.slice(-4);
    return '@' + a;
  }

  function seriesName(series) {
    return series === 'negative' ? 'negative mentions' : 'all mentions';
  }

  // ---- filters ------------------------------------------------------------------------

  function brandShown(brand) {
    const f = state.filter;
    if (f.brand && brand !== f.brand) return false;
    if (f.queue) {
      const known = state.brands.find((b) => b.id === brand);
      const queues = known && Array.isArray(known.queues) ? new Set(known.queues) : state.brandQueues.get(brand);
      if (!queues || !queues.has(f.queue)) return false;
    }
    return true;
  }

  function mentionShown(m) {
    const f = state.filter;
    const brands = Array.isArray(m.brands) ? m.brands : [];
    const queues = Array.isArray(m.queues) ? m.queues : [];
    if (f.brand && !brands.includes(f.brand)) return false;
    if (f.queue && !queues.includes(f.queue)) return false;
    return true;
  }

  function fillSelect(select, values, allLabel, current) {
    const wanted = [''].concat(values);
    const have = Array.from(select.options).map((o) => o.value);
    if (current && !wanted.includes(current)) wanted.push(current);
    if (have.length === wanted.length && have.every((v, i) => v === wanted[i])) return;
    select.replaceChildren();
    for (const v of wanted) {
      const o = el('option', null, v || allLabel);
      o.value = v;
      select.appendChild(o);
    }
    select.value = current;
  }

  function readFilterFromUrl() {
    const q = new URLSearchParams(location.search);
    state.filter.brand = q.get('brand') || '';
    state.filter.queue = q.get('queue') || '';
  }

  function filterChanged() {
    state.filter.brand = $('brand-filter').value;
    state.filter.queue = $('queue-filter').value;
    const q = new URLSearchParams();
    if (state.filter.brand) q.set('brand', state.filter.brand);
    if (state.filter.queue) q.set('queue', state.filter.queue);
    const s = q.toString();
    history.replaceState(null, '', location.pathname + (s ? '?' + s : ''));
    renderCards();
    renderSpikes();
    renderFeed();
  }

  // Puts `node` at position `i` of `parent`, moving it only when it is elsewhere (moving a
  // node loses a reader's text selection).
  function place(parent, node, i) {
    const at = parent.children[i];
    if (at !== node) parent.insertBefore(node, at || null);
  }

  // ---- brand cards --------------------------------------------------------------------

  function makeCard(brand) {
    const card = el('article', 'card');
    card.dataset.brand = brand.id;
    const head = el('header', 'card-head');
    head.appendChild(el('h3', 'brand-name', brand.id));
    const kind = el('span', 'kind', brand.kind || '');
    head.appendChild(kind);
    const flag = el('span', 'spike-flag', 'SPIKE');
    head.appendChild(flag);
    card.appendChild(head);

    const figures = el('div', 'figures');
    const rateFig = el('div', 'figure');
    const rateValue = el('span', 'value rate', '—');
    rateFig.append(rateValue, el('span', 'unit', '/s'), el('span', 'label', 'mentions'));
    const negFig = el('div', 'figure negative');
    const negValue = el('span', 'value', '—');
    negFig.append(negValue, el('span', 'label', 'negative'));
    figures.append(rateFig, negFig);
    card.appendChild(figures);

    const spark = svg('svg', { class: 'spark', viewBox: '0 0 300 60', preserveAspectRatio: 'none', role: 'img' });
    const bars = [];
    const buckets = 300 / BUCKET_S;
    const w = 300 / buckets;
    for (let i = 0; i < buckets; i++) {
      const all = svg('rect', { class: 'bar-all', x: i * w + 0.5, width: w - 1, y: 60, height: 0 });
      const neg = svg('rect', { class: 'bar-neg', x: i * w + 0.5, width: w - 1, y: 60, height: 0 });
      spark.append(all, neg);
      bars.push([all, neg]);
    }
    const title = svg('title');
    spark.appendChild(title);
    card.appendChild(spark);
    const axis = el('div', 'axis');
    const peak = el('span', 'peak', '');
    axis.append(el('span', null, '−5 min'), peak, el('span', null, 'now'));
    card.appendChild(axis);
    return { card, kind, flag, rateValue, negValue, negFig, bars, title, peak };
  }

  function bucketed(series) {
    const values = Array.isArray(series) ? series.slice(-300) : [];
    const buckets = 300 / BUCKET_S;
    const out = new Array(buckets).fill(0);
    // Align to the right: the newest second is the last bar.
    const offset = 300 - values.length;
    values.forEach((v, i) => {
      out[Math.floor((offset + i) / BUCKET_S)] += typeof v === 'number' ? v : 0;
    });
    return out;
  }

  function updateCard(parts, brand) {
    parts.card.dataset.rate = String(typeof brand.rate === 'number' ? brand.rate : 0);
    parts.card.classList.toggle('spiking', !!brand.spike);
    parts.card.classList.toggle('competitor', brand.kind === 'competitor');
    parts.kind.textContent = brand.kind || '';
    parts.rateValue.textContent = rate(brand.rate);
    parts.negValue.textContent = percent(brand.negative_share);
    const share = typeof brand.negative_share === 'number' ? brand.negative_share : 0;
    parts.negFig.classList.toggle('alarming', share >= 0.5);
    const all = bucketed(brand.counts);
    const neg = bucketed(brand.negatives);
    const max = Math.max(1, ...all);
    all.forEach((v, i) => {
      const [a, n] = parts.bars[i];
      const ha = (v / max) * 58;
      const hn = (Math.min(neg[i], v) / max) * 58;
      a.setAttribute('y', (60 - ha).toFixed(2));
      a.setAttribute('height', ha.toFixed(2));
      n.setAttribute('y', (60 - hn).toFixed(2));
      n.setAttribute('height', hn.toFixed(2));
    });
    const peakRate = Math.max(...all) / BUCKET_S;
    parts.peak.textContent = 'peak ' + rate(peakRate) + '/s';
    parts.title.textContent =
      brand.id + ': mentions per ' + BUCKET_S + ' s over the last 5 minutes, negative in red';
  }

  function renderCards() {
    const box = $('brands');
    const seen = new Set();
    let shown = 0;
    let position = 0;
    for (const brand of state.brands) {
      if (!brand || typeof brand.id !== 'string') continue;
      seen.add(brand.id);
      let parts = state.cards.get(brand.id);
      if (!parts) {
        parts = makeCard(brand);
        state.cards.set(brand.id, parts);
      }
      // Keep the snapshot's order without rebuilding cards.
      place(box, parts.card, position++);
      updateCard(parts, brand);
      const visible = brandShown(brand.id);
      parts.card.hidden = !visible;
      if (visible) shown++;
    }
    for (const [id, parts] of state.cards) {
      if (!seen.has(id)) {
        parts.card.remove();
        state.cards.delete(id);
      }
    }
    const empty = $('brands-empty');
    empty.hidden = shown > 0;
    if (state.brands.length === 0) empty.textContent = 'Waiting for data…';
    else if (state.filter.queue)
      empty.textContent = 'No brand has had a mention routed to ' + state.filter.queue + ' since this page opened.';
    else empty.textContent = 'No brand matches the filter.';
  }

  // ---- spikes -------------------------------------------------------------------------

  function spikeKey(doc) {
    return doc.brand + ':' + doc.series;
  }

  function buildSpike(doc, ended) {
    const li = el('li', 'spike');
    li.dataset.spike = spikeKey(doc);
    li.dataset.state = ended ? 'ended' : 'active';

    const head = el('div', 'spike-head');
    const who = el('div', 'who');
    who.append(el('span', 'brand', doc.brand), el('span', 'series', seriesName(doc.series)));
    if (doc.brand_kind === 'competitor') who.appendChild(el('span', 'kind', 'competitor'));
    if (ended) who.appendChild(el('span', 'ended-flag', 'ended'));
    const ratio = el('div', 'ratio');
    ratio.append(
      el('span', 'value', typeof doc.ratio === 'number' ? doc.ratio.toFixed(1) + '×' : '—'),
      el('span', 'label', 'baseline')
    );
    head.append(who, ratio);
    li.appendChild(head);

    const facts = el('dl', 'facts');
    const fact = (name, value) => {
      const d = el('div', 'fact');
      d.append(el('dt', null, name), el('dd', null, value));
      facts.appendChild(d);
      return d;
    };
    fact('now', rate(doc.rate) + '/s');
    fact('expected', rate(doc.baseline) + '/s');
    fact('peak', rate(doc.peak_rate) + '/s');
    fact('mentions', typeof doc.mentions === 'number' ? doc.mentions.toLocaleString('en') : '—');
    fact('negative', percent(doc.negative_share));
    const started = fact('started', clock(doc.started_at));
    const agoEl = el('span', 'ago', '');
    started.querySelector('dd').append(' ', agoEl);
    if (ended && doc.ended_at) fact('ended', clock(doc.ended_at));
    li.appendChild(facts);

    const terms = Array.isArray(doc.terms) ? doc.terms : [];
    if (terms.length) {
      const ul = el('ul', 'terms');
      ul.setAttribute('aria-label', 'driving terms');
      for (const t of terms) {
        const chip = el('li', 'chip', t.term);
        if (typeof t.count === 'number') chip.appendChild(el('small', null, t.count));
        if (typeof t.lift === 'number') chip.title = 'lift ' + t.lift.toFixed(1) + '×';
        ul.appendChild(chip);
      }
      li.appendChild(ul);
    }

    const groups = groupPosts(Array.isArray(doc.posts) ? doc.posts : []);
    if (groups.length) {
      const ol = el('ol', 'posts');
      groups.slice(0, POSTS_SHOWN).forEach((g) => ol.appendChild(postItem(g)));
      li.appendChild(ol);
      if (groups.length > POSTS_SHOWN) {
        const more = el('details', 'more-posts');
        more.appendChild(el('summary', null, groups.length - POSTS_SHOWN + ' more'));
        const rest = el('ol', 'posts');
        groups.slice(POSTS_SHOWN).forEach((g) => rest.appendChild(postItem(g)));
        more.appendChild(rest);
        li.appendChild(more);
      }
    }
    return { li, agoEl };
  }

  // Top posts of a spike are often the same text from many accounts (a storm, a copied
  // complaint): one entry per text, with how many posts and accounts carry it.
  function groupPosts(posts) {
    const groups = new Map();
    for (const p of posts) {
      if (!p) continue;
      const key = String(p.text || '').replace(/\s+/g, ' ').trim().toLowerCase();
      const g = groups.get(key);
      if (g) g.others.push(p);
      else groups.set(key, { post: p, others: [] });
    }
    return Array.from(groups.values());
  }

  function postItem(group) {
    const p = group.post;
    const item = el('li', 'post');
    const meta = el('div', 'meta');
    meta.appendChild(el('span', urgencyClass(p.urgency), p.urgency));
    meta.appendChild(link(p.url, handle(p.author), 'author'));
    if (typeof p.followers === 'number') meta.appendChild(el('span', 'muted', compact(p.followers) + ' followers'));
    if (p.platform) meta.appendChild(el('span', 'muted', p.platform));
    if (p.sentiment) meta.appendChild(el('span', 'sentiment s-' + p.sentiment, p.sentiment));
    if (group.others.length) {
      const same = el('span', 'same', '×' + (group.others.length + 1) + ' same text');
      same.title = group.others.map((o) => o.author || '').join('\n');
      meta.appendChild(same);
    }
    item.append(meta, el('p', 'text', p.text));
    return item;
  }

  function renderSpikes() {
    const now = Date.now();
    for (const [key, e] of state.ended) {
      if (now - e.at > ENDED_SHOWN_MS || state.active.has(key)) state.ended.delete(key);
    }
    const entries = [];
    for (const [key, doc] of state.active) entries.push({ key, doc, ended: false });
    for (const [key, e] of state.ended) entries.push({ key, doc: e.doc, ended: true });
    // Worst first; ended ones last.
    entries.sort((a, b) => a.ended - b.ended || (b.doc.ratio || 0) - (a.doc.ratio || 0));

    const list = $('spikes');
    const keep = new Set();
    let shownActive = 0;
    let shown = 0;
    for (const { key, doc, ended } of entries) {
      if (!brandShown(doc.brand)) continue;
      const id = key + (ended ? '#ended' : '');
      keep.add(id);
      const sig = JSON.stringify([doc.at, doc.event, doc.rate, doc.mentions, ended]);
      let entry = state.spikeEls.get(id);
      if (!entry || entry.sig !== sig) {
        const built = buildSpike(doc, ended);
        if (entry) {
          // A reader who opened "more" keeps it open through updates.
          const was = entry.li.querySelector('.more-posts');
          const now = built.li.querySelector('.more-posts');
          if (was && now) now.open = was.open;
          entry.li.replaceWith(built.li);
        }
        entry = { li: built.li, agoEl: built.agoEl, sig };
        state.spikeEls.set(id, entry);
      }
      entry.agoEl.textContent = '(' + ago(doc.started_at) + ')';
      place(list, entry.li, shown);
      shown++;
      if (!ended) shownActive++;
    }
    for (const [id, entry] of state.spikeEls) {
      if (!keep.has(id)) {
        entry.li.remove();
        state.spikeEls.delete(id);
      }
    }
    $('spike-count').textContent = String(shownActive);
    $('spikes-panel').dataset.count = String(shownActive);
    $('spikes-empty').hidden = shown > 0;
    document.title = (state.active.size ? '(' + state.active.size + ' spike' + (state.active.size > 1 ? 's' : '') + ') ' : '') + 'earshot live';
  }

  function spikeEvent(doc) {
    if (!doc || typeof doc.brand !== 'string') return;
    const key = spikeKey(doc);
    if (doc.event === 'ended') {
      state.active.delete(key);
      state.ended.set(key, { doc, at: Date.now() });
    } else {
      state.active.set(key, doc);
      state.ended.delete(key);
    }
    renderSpikes();
  }

  // ---- feed ---------------------------------------------------------------------------

  function feedRow(m) {
    const li = el('li', 'row');
    if (m.sentiment) li.classList.add('s-' + m.sentiment);
    li.dataset.id = m.id || '';
    li.appendChild(el('span', urgencyClass(m.urgency), typeof m.urgency === 'number' ? m.urgency : '–'));
    const body = el('div', 'body');
    const meta = el('div', 'meta');
    meta.appendChild(el('time', 'time', clock(m.at)));
    for (const b of m.brands || []) meta.appendChild(el('span', 'brand', b));
    if (m.sentiment) meta.appendChild(el('span', 'sentiment s-' + m.sentiment, m.sentiment));
    if (m.category) meta.appendChild(el('span', 'category', m.category));
    for (const q of m.queues || []) meta.appendChild(el('span', 'queue', '→ ' + q));
    const who = link(m.url, handle(m.author), 'author');
    if (m.author) who.title = String(m.author);
    meta.appendChild(who);
    if (m.platform) meta.appendChild(el('span', 'muted', m.platform));
    body.append(meta, el('p', 'text', m.text));
    li.appendChild(body);
    return li;
  }

  function renderFeed() {
    state.unrendered = [];
    const feed = $('feed');
    const rows = [];
    for (const m of state.mentions) {
      if (rows.length >= FEED_ROWS) break;
      if (mentionShown(m)) rows.push(feedRow(m));
    }
    feed.replaceChildren(...rows);
    state.pausedNew = 0;
    updateFeedNote();
  }

  function flushFeed() {
    state.flushScheduled = false;
    if (state.paused) return;
    const feed = $('feed');
    const fresh = state.unrendered.filter(mentionShown);
    state.unrendered = [];
    const start = Math.max(0, fresh.length - FEED_ROWS);
    for (let i = start; i < fresh.length; i++) feed.insertBefore(feedRow(fresh[i]), feed.firstChild);
    while (feed.childElementCount > FEED_ROWS) feed.lastElementChild.remove();
    updateFeedNote();
  }

  function updateFeedNote() {
    const feed = $('feed');
    $('feed-empty').hidden = feed.childElementCount > 0;
    const notes = [];
    if (state.paused) notes.push('paused' + (state.pausedNew ? ', ' + state.pausedNew + ' new' : ''));
    if (state.skipped) notes.push(state.skipped + ' skipped while this tab was behind');
    $('feed-note').textContent = notes.length ? '(' + notes.join(' · ') + ')' : '(newest first, last ' + FEED_ROWS + ')';
  }

  function mentionEvent(m) {
    if (!m || !Array.isArray(m.queues) || m.queues.length === 0) return;
    for (const b of m.brands || []) {
      let set = state.brandQueues.get(b);
      if (!set) state.brandQueues.set(b, (set = new Set()));
      for (const q of m.queues) set.add(q);
    }
    state.mentions.unshift(m);
    if (state.mentions.length > FEED_KEPT) state.mentions.length = FEED_KEPT;
    if (state.paused) {
      if (mentionShown(m)) state.pausedNew++;
      updateFeedNote();
      return;
    }
    state.unrendered.push(m);
    if (state.unrendered.length > FEED_ROWS) state.unrendered.shift();
    if (!state.flushScheduled) {
      state.flushScheduled = true;
      // Batch bursts: one DOM update per 200 ms however many mentions arrive.
      setTimeout(flushFeed, 200);
    }
  }

  function togglePause() {
    state.paused = !state.paused;
    const button = $('pause');
    button.setAttribute('aria-pressed', String(state.paused));
    button.textContent = state.paused ? 'Resume' : 'Pause';
    if (!state.paused) renderFeed();
    else updateFeedNote();
  }

  // ---- snapshot -----------------------------------------------------------------------

  function snapshotEvent(s) {
    if (!s || typeof s !== 'object') return;
    state.brands = Array.isArray(s.brands) ? s.brands : [];
    state.queues = Array.isArray(s.queues) ? s.queues : [];
    fillSelect($('brand-filter'), state.brands.map((b) => b.id), 'All brands', state.filter.brand);
    fillSelect($('queue-filter'), state.queues, 'All queues', state.filter.queue);
    // The snapshot lists the spikes active now; one that vanished ended (its `ended`
    // event may have been missed while reconnecting).
    const active = new Map();
    for (const doc of Array.isArray(s.spikes) ? s.spikes : []) {
      if (doc && typeof doc.brand === 'string') active.set(spikeKey(doc), doc);
    }
    for (const [key, doc] of state.active) {
      if (!active.has(key) && !state.ended.has(key)) state.ended.set(key, { doc, at: Date.now() });
    }
    state.active = active;
    renderCards();
    renderSpikes();
    $('updated').textContent = 'updated ' + clock(typeof s.at === 'number' ? s.at : Date.now());
  }

  // ---- connection ---------------------------------------------------------------------

  const STATUS_TEXT = {
    connecting: 'Connecting…',
    live: 'Live',
    stale: 'Stale',
    reconnecting: 'Reconnecting…',
    offline: 'Offline, retrying',
  };

  function setStatus(s, detail) {
    const node = $('status');
    node.dataset.state = s;
    node.textContent = STATUS_TEXT[s] + (detail ? ' · ' + detail : '');
  }

  function handler(fn) {
    return (ev) => {
      state.lastMessage = Date.now();
      if ($('status').dataset.state !== 'live') setStatus('live');
      let doc;
      try {
        doc = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      fn(doc);
    };
  }

  function connect() {
    setStatus(state.connected ? 'reconnecting' : 'connecting');
    const source = new EventSource('/live/events');
    source.onopen = () => {
      state.connected = true;
      state.lastMessage = Date.now();
      setStatus('live');
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (the server answered with an error): try again later.
        setStatus('offline');
        source.close();
        setTimeout(connect, RETRY_MS);
      } else {
        setStatus('reconnecting');
      }
    };
    source.addEventListener('snapshot', handler(snapshotEvent));
    source.addEventListener('mention', handler(mentionEvent));
    source.addEventListener('spike', handler(spikeEvent));
    source.addEventListener(
      'lagged',
      handler((d) => {
        state.skipped += d && typeof d.skipped === 'number' ? d.skipped : 0;
        updateFeedNote();
      })
    );
  }

  function tick() {
    const node = $('status');
    if (node.dataset.state === 'live' || node.dataset.state === 'stale') {
      const quiet = Date.now() - state.lastMessage;
      if (quiet > STALE_MS) setStatus('stale', 'no data for ' + Math.round(quiet / 1000) + ' s');
    }
    renderSpikes(); // "started … ago" and the expiry of ended spikes
  }

  function start() {
    readFilterFromUrl();
    fillSelect($('brand-filter'), [], 'All brands', state.filter.brand);
    fillSelect($('queue-filter'), [], 'All queues', state.filter.queue);
    $('brand-filter').addEventListener('change', filterChanged);
    $('queue-filter').addEventListener('change', filterChanged);
    $('filters').addEventListener('submit', (e) => e.preventDefault());
    $('pause').addEventListener('click', togglePause);
    updateFeedNote();
    connect();
    setInterval(tick, 1000);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
