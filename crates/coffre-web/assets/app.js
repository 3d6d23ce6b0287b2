// coffre web explorer: chips drawn to scale, live readings, scenarios, bus.
'use strict';

(function () {
  const SVGNS = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#0b5fff', '#d84315', '#1d6e55', '#8e24aa', '#a86800', '#00838f'];
  const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];

  // ---------------------------------------------------------------- helpers

  function $(sel, root) {
    return (root || document).querySelector(sel);
  }

  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'text') e.textContent = v;
        else if (k === 'class') e.className = v;
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of kids.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: 'application/json' } });
    let body = null;
    try {
      body = await r.json();
    } catch (_) {
      body = null;
    }
    if (!r.ok) {
      throw new Error((body && body.error) || ('HTTP ' + r.status));
    }
    return body;
  }

  function plural(n, one, many) {
    return n + ' ' + (n === 1 ? one : (many || one + 's'));
  }

  function timeOf(s) {
    const m = /T(\d\d:\d\d:\d\d)/.exec(s || '');
    return m ? m[1] : (s || '');
  }

  function fmt(v, digits) {
    return typeof v === 'number' && isFinite(v) ? v.toFixed(digits) : '–';
  }

  // Hex bytes ("0A1B…") as text with the ranges [start, end) marked.
  function hexBytes(hex, ranges, from, to) {
    const frag = document.createDocumentFragment();
    const n = hex.length / 2;
    from = from || 0;
    to = Math.min(to === undefined ? n : to, n);
    const isKey = (j) => (ranges || []).some((r) => j >= r[0] && j < r[1]);
    let j = from;
    while (j < to) {
      const key = isKey(j);
      let k = j;
      const bytes = [];
      while (k < to && isKey(k) === key) {
        bytes.push(hex.substr(k * 2, 2));
        k++;
      }
      if (j > from) frag.append(' ');
      if (key) {
        const m = h('mark', { class: 'key', title: 'private-key bytes' });
        m.append(h('span', { class: 'sr-only', text: 'private key bytes: ' }), bytes.join(' '));
        frag.append(m);
      } else {
        frag.append(bytes.join(' '));
      }
      j = k;
    }
    return frag;
  }

  function hexDump(hex, keyRange, width) {
    const n = hex.length / 2;
    const perLine = width && width < 430 ? 8 : 16;
    const pre = h('pre', { class: 'hex', tabindex: '0', 'aria-label': plural(n, 'byte') + ' in hexadecimal' });
    const ranges = keyRange ? [keyRange] : [];
    for (let off = 0; off < n; off += perLine) {
      pre.append(h('span', { class: 'off', text: off.toString(16).toUpperCase().padStart(3, '0') + '  ' }));
      pre.append(hexBytes(hex, ranges, off, off + perLine));
      pre.append('\n');
    }
    return pre;
  }

  function lockIcon(closed) {
    const s = svg('svg', { viewBox: '0 0 12 12', class: 'lock-icon', 'aria-hidden': 'true', focusable: 'false' });
    s.append(svg('rect', { x: 2, y: 5.5, width: 8, height: 6, rx: 1, fill: 'currentColor' }));
    s.append(svg('path', {
      d: closed ? 'M3.8 5.5V4a2.2 2.2 0 0 1 4.4 0v1.5' : 'M3.8 5.5V3.2a2.2 2.2 0 0 1 4.4 0',
      fill: 'none',
      stroke: 'currentColor',
      'stroke-width': 1.4,
    }));
    return s;
  }

  function lockBadge(what, locked) {
    const b = h('span', { class: 'badge ' + (locked ? 'locked' : 'unlocked') });
    b.append(lockIcon(locked), what + (locked ? ' locked' : ' UNLOCKED'));
    return b;
  }

  function severityBadges(findings) {
    const out = [];
    for (const sev of SEVERITIES) {
      const n = findings.filter((f) => f.severity === sev).length;
      if (n) out.push(h('span', { class: 'badge sev-' + sev, text: n + ' ' + sev }));
    }
    if (!findings.length) out.push(h('span', { class: 'badge locked', text: 'no finding' }));
    return out;
  }

  function findingsBlock(findings, title) {
    const frag = document.createDocumentFragment();
    frag.append(h('h5', { text: (title || 'Findings') + ' (' + findings.length + ')' }));
    if (!findings.length) {
      frag.append(h('p', { class: 'muted', text: 'No finding.' }));
      return frag;
    }
    const ul = h('ul', { class: 'findings' });
    for (const f of findings) {
      ul.append(h('li', null,
        h('span', { class: 'badge sev-' + f.severity, text: f.severity }), ' ',
        f.message, ' ', h('span', { class: 'code', text: '[' + f.code + ']' }),
        h('div', { class: 'fix', text: 'Fix: ' + f.fix })));
    }
    frag.append(ul);
    return frag;
  }

  function policyList(rows) {
    const dl = h('dl', { class: 'policy' });
    for (const [k, v] of rows) {
      if (v === null || v === undefined) continue;
      dl.append(h('dt', { text: k }), h('dd', { text: v }));
    }
    return dl;
  }

  function bitsTable(title, word) {
    const d = h('details', { open: true });
    d.append(h('summary', { text: title + ' ' + word.raw + ': every bit' }));
    const t = h('table', { class: 'bits stack' });
    t.append(h('thead', null, h('tr', null,
      h('th', { scope: 'col', text: 'Bits' }), h('th', { scope: 'col', text: 'Field' }),
      h('th', { scope: 'col', text: 'Value' }), h('th', { scope: 'col', text: 'Meaning' }))));
    const tb = h('tbody');
    for (const b of word.bits) {
      tb.append(h('tr', null,
        h('td', { 'data-label': 'Bits', text: b.bits }),
        h('td', { 'data-label': 'Field', text: b.name }),
        h('td', { 'data-label': 'Value', text: b.value }),
        h('td', { 'data-label': 'Meaning', text: b.meaning })));
    }
    t.append(tb);
    d.append(h('div', { class: 'table-wrap' }, t));
    return d;
  }

  // ------------------------------------------------------------------ chips

  const chipState = { views: new Map() };

  function zonesOf(v) {
    const s = v.slots;
    const cfg = {
      id: 'config', size: v.config_zone.size, cls: 'config', title: 'Config zone', short: 'Config zone',
      locked: v.config_zone.locked, lockable: true,
      aria: 'Config zone, 128 bytes, ' + (v.config_zone.locked ? 'locked' : 'unlocked') + '. ' + v.config_zone.policy,
    };
    const otp = {
      id: 'otp', size: v.otp.size, cls: 'otp', title: 'OTP zone', short: 'OTP',
      locked: v.otp.locked, lockable: true,
      aria: 'OTP zone, 64 bytes, ' + (v.otp.locked ? 'locked' : 'unlocked') + '. ' + v.otp.policy,
    };
    const slotZone = (sl) => {
      const exposed = sl.content.kind === 'pkcs8-key';
      return {
        id: 'slot-' + sl.slot, size: sl.size, cls: sl.class, slot: sl,
        title: 'Slot ' + sl.slot, short: sl.slot === 8 ? 'Slot 8' : String(sl.slot),
        role: sl.role, exposed: exposed,
        locked: sl.lock.slot_locked, lockable: sl.lock.lockable,
        aria: 'Slot ' + sl.slot + (sl.role ? ', ' + sl.role : '') + ', ' + sl.size + ' bytes. Read: ' +
          sl.policy.read + '. Write: ' + sl.policy.write + '.' +
          (exposed ? ' Holds a private key served in clear.' : '') +
          (sl.lock.slot_locked ? ' Slot-locked.' : (sl.lock.lockable ? ' Lockable.' : '')) +
          (sl.findings.length ? ' ' + plural(sl.findings.length, 'finding') + '.' : ''),
      };
    };
    return [
      [cfg, otp],
      s.slice(0, 8).map(slotZone),
      [slotZone(s[8])],
      s.slice(9, 16).map(slotZone),
    ];
  }

  function zoneButton(z, detailId) {
    const b = h('button', {
      type: 'button', class: 'zone c-' + z.cls + (z.slot && z.slot.slot === 8 ? ' blocks-13' : '') +
        (z.exposed ? ' has-key' : ''),
      'data-zone': z.id, 'aria-pressed': 'false', 'aria-controls': detailId, 'aria-label': z.aria,
    });
    b.style.flexGrow = String(z.size);
    if (z.exposed) {
      const kr = z.slot.content.key_range;
      const band = h('span', { class: 'keyband c-key-exposed', 'aria-hidden': 'true' });
      band.style.left = (kr[0] / z.size * 100) + '%';
      band.style.width = ((kr[1] - kr[0]) / z.size * 100) + '%';
      b.append(band);
      b.append(h('span', { class: 'flag', 'aria-hidden': 'true', text: 'KEY' }));
    }
    b.append(h('span', { class: 'zn', text: z.short }));
    b.append(h('span', { class: 'zs', text: z.size + ' B' }));
    if (z.role && z.size > 36) b.append(h('span', { class: 'zr', text: z.role }));
    if (z.locked || z.lockable) {
      const l = h('span', { class: 'zl', 'aria-hidden': 'true', title: z.locked ? 'locked' : 'lockable, not locked' });
      l.append(lockIcon(z.locked));
      b.append(l);
    }
    return b;
  }

  function drawDie(v, i, detail) {
    const die = h('div', { class: 'die', role: 'group', 'aria-label': v.name + ': memory map drawn to scale' });
    for (const row of zonesOf(v)) {
      const r = h('div', { class: 'die-row' });
      r.style.flexGrow = String(row.reduce((a, z) => a + z.size, 0));
      for (const z of row) r.append(zoneButton(z, detail.id));
      die.append(r);
    }
    die.addEventListener('click', (ev) => {
      const b = ev.target.closest('.zone');
      if (b) selectZone(v, die, detail, b.dataset.zone);
    });
    die.addEventListener('keydown', (ev) => {
      const keys = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
      if (!(ev.key in keys) && ev.key !== 'Home' && ev.key !== 'End') return;
      const all = Array.from(die.querySelectorAll('.zone'));
      const at = all.indexOf(document.activeElement);
      if (at < 0) return;
      let next = at + (keys[ev.key] || 0);
      if (ev.key === 'Home') next = 0;
      if (ev.key === 'End') next = all.length - 1;
      next = Math.max(0, Math.min(all.length - 1, next));
      all[next].focus();
      ev.preventDefault();
    });
    return die;
  }

  function selectZone(v, die, detail, zoneId) {
    for (const z of die.querySelectorAll('.zone')) {
      z.setAttribute('aria-pressed', String(z.dataset.zone === zoneId));
    }
    const width = detail.clientWidth;
    let parts;
    if (zoneId === 'config') parts = configDetail(v, width);
    else if (zoneId === 'otp') parts = otpDetail(v, width);
    else parts = slotDetail(v, v.slots[Number(zoneId.slice(5))], width);
    detail.replaceChildren(...parts);
    detail.dataset.zone = zoneId;
  }

  function slotDetail(v, sl, width) {
    const out = [];
    out.push(h('h4', { text: 'Slot ' + sl.slot + (sl.role ? ' — ' + sl.role : '') }));
    out.push(h('p', {
      class: 'role',
      text: sl.size + ' bytes (' + plural(sl.blocks, 'block') + ' of 32 B). ' + (sl.role_description || ''),
    }));
    out.push(policyList([
      ['Read', sl.policy.read],
      ['Write', sl.policy.write],
      ['Use', sl.policy.use],
      ['Lock', sl.lock.text],
      ['Key type', sl.key_type],
    ]));
    if (sl.policy.note) out.push(h('p', { class: 'note', text: sl.policy.note }));
    out.push(h('h5', { text: 'Content' }));
    out.push(h('p', null, h('strong', { text: sl.content.text })));
    const d = sl.content.detail;
    if (d && d.detail && d.detail.public_key) {
      out.push(h('p', { class: 'muted' }, 'Public key (X‖Y): ', h('code', { text: d.detail.public_key })));
    }
    if (sl.content.label) out.push(h('p', { class: 'keylabel', role: 'note', text: sl.content.label }));
    if (sl.content.hex) out.push(hexDump(sl.content.hex, sl.content.key_range, width));
    out.push(findingsBlock(sl.findings, 'Findings for slot ' + sl.slot));
    out.push(bitsTable('SlotConfig', sl.slot_config));
    out.push(bitsTable('KeyConfig', sl.key_config));
    return out;
  }

  function configDetail(v, width) {
    const c = v.config_zone;
    const out = [];
    out.push(h('h4', { text: 'Config zone — 128 bytes' }));
    out.push(h('p', { class: 'role', text: 'Serial number, I2C address, the SlotConfig and KeyConfig of every slot, counters and lock bytes.' }));
    out.push(policyList([
      ['Read', 'anyone on the bus, in clear'],
      ['Write', c.locked ? 'nobody: the config zone is locked' : 'anyone on the bus, until the config zone is locked'],
      ['Lock', v.locks.text],
    ]));
    out.push(h('p', { class: 'muted', text: c.policy }));
    out.push(findingsBlock(c.findings, 'Findings for the whole chip'));
    const d = h('details', { open: true });
    d.append(h('summary', { text: 'Every field' }));
    const t = h('table', { class: 'fields stack' });
    t.append(h('thead', null, h('tr', null,
      h('th', { scope: 'col', text: 'Bytes' }), h('th', { scope: 'col', text: 'Field' }),
      h('th', { scope: 'col', text: 'Value' }), h('th', { scope: 'col', text: 'Meaning' }))));
    const tb = h('tbody');
    for (const f of c.fields) {
      const range = f.len > 1 ? f.offset + '–' + (f.offset + f.len - 1) : String(f.offset);
      tb.append(h('tr', null,
        h('td', { 'data-label': 'Bytes', text: range }),
        h('td', { 'data-label': 'Field', text: f.name }),
        h('td', { 'data-label': 'Value', text: f.hex }),
        h('td', { 'data-label': 'Meaning', text: f.meaning })));
    }
    t.append(tb);
    d.append(h('div', { class: 'table-wrap' }, t));
    out.push(d);
    out.push(h('h5', { text: 'Bytes' }));
    out.push(hexDump(c.hex, null, width));
    return out;
  }

  function otpDetail(v, width) {
    const o = v.otp;
    const out = [];
    out.push(h('h4', { text: 'OTP zone — 64 bytes' }));
    out.push(h('p', { class: 'role', text: 'One-time-programmable memory; Trust&GO parts keep their certificate-definition id here.' }));
    out.push(policyList([
      ['Read', o.readable ? 'anyone on the bus, in clear' : 'not readable now'],
      ['Write', o.locked ? 'nobody: locked with the data zone' : 'anyone on the bus, until the data zone is locked'],
      ['Lock', o.locked ? 'locked (LockValue)' : 'UNLOCKED'],
    ]));
    out.push(h('p', { class: 'muted', text: o.policy }));
    out.push(h('h5', { text: 'Content' }));
    if (o.hex) {
      out.push(h('p', null, h('strong', { text: o.text ? 'text ' + JSON.stringify(o.text) : 'binary data' })));
      out.push(hexDump(o.hex, null, width));
    } else {
      out.push(h('p', { class: 'muted', text: 'The chip did not let the OTP zone be read.' }));
    }
    return out;
  }

  function overview(v, die, detail) {
    const out = [h('h4', { text: 'Audit of ' + v.name })];
    out.push(h('p', { class: 'role', text: 'Select a zone of the map to see its bits, policy and content.' }));
    if (!v.findings.length) {
      out.push(h('p', { class: 'muted', text: 'No finding.' }));
      return out;
    }
    const ul = h('ul', { class: 'findings' });
    for (const f of v.findings) {
      const li = h('li', null, h('span', { class: 'badge sev-' + f.severity, text: f.severity }), ' ', f.message);
      const zone = f.slot === null || f.slot === undefined ? 'config' : 'slot-' + f.slot;
      const btn = h('button', {
        type: 'button', class: 'linkish',
        text: f.slot === null || f.slot === undefined ? 'Show the config zone' : 'Show slot ' + f.slot,
      });
      btn.addEventListener('click', () => {
        selectZone(v, die, detail, zone);
        const z = die.querySelector('[data-zone="' + zone + '"]');
        if (z) z.focus();
      });
      li.append(' ', btn);
      ul.append(li);
    }
    out.push(ul);
    return out;
  }

  function renderChip(card, v, i) {
    const head = h('header', null,
      h('h3', { id: 'chip-' + i + '-h', text: v.name }),
      h('p', { class: 'meta', text: v.device + ' · serial ' + v.serial + ' · address ' + v.address + ' · ' + v.source }),
      h('div', { class: 'badges' },
        lockBadge('config', v.locks.config_locked),
        lockBadge('data/OTP', v.locks.data_locked),
        v.locks.slot_locked.length
          ? h('span', { class: 'badge locked', text: 'slot-locked: ' + v.locks.slot_locked.join(', ') })
          : null,
        severityBadges(v.findings)));
    const alerts = [];
    for (const n of v.exposed_key_slots) {
      const sl = v.slots[n];
      alerts.push(h('p', {
        class: 'alert', role: 'note',
        text: 'Slot ' + n + ' holds a private key that anyone on the bus can read' +
          (sl.class === 'clear-write' ? ' and overwrite' : '') + '.',
      }));
    }
    for (const w of v.warnings) alerts.push(h('p', { class: 'note', text: w }));
    const detail = h('div', {
      class: 'detail', id: 'detail-' + i, tabindex: '-1', role: 'region',
      'aria-label': 'Details for ' + v.name,
    });
    const die = drawDie(v, i, detail);
    detail.append(...overview(v, die, detail));
    const body = h('div', { class: 'chip-body' },
      h('div', null, die, h('p', {
        class: 'scale-note',
        text: 'To scale: 1,400 bytes in all. The 13 stripes of slot 8 are its 32-byte blocks.',
      })),
      detail);
    card.replaceChildren(head, ...alerts, body);
  }

  async function loadChip(c, i, card) {
    try {
      const v = await getJSON('/api/chips/' + encodeURIComponent(c.name));
      chipState.views.set(c.name, v);
      renderChip(card, v, i);
    } catch (e) {
      card.replaceChildren(
        h('h3', { id: 'chip-' + i + '-h', text: c.name }),
        h('p', { class: 'meta', text: c.source }),
        h('p', { class: 'alert', text: 'This chip could not be read: ' + e.message }));
    }
  }

  async function loadChips() {
    const grid = $('#chip-grid');
    let list;
    try {
      list = await getJSON('/api/chips');
    } catch (e) {
      grid.replaceChildren(h('p', { class: 'alert', text: 'The chip list could not be loaded: ' + e.message }));
      grid.removeAttribute('aria-busy');
      return;
    }
    grid.replaceChildren();
    if (!list.chips.length) {
      grid.append(h('p', { class: 'muted', text: 'No chip is configured: start the explorer with --bus emu:IMAGE.' }));
    }
    const loads = list.chips.map((c, i) => {
      const card = h('article', { class: 'chip-card', 'data-chip': c.name, 'aria-labelledby': 'chip-' + i + '-h' },
        h('h3', { id: 'chip-' + i + '-h', text: c.name }),
        h('p', { class: 'meta', text: c.source }),
        h('p', { class: 'muted', text: 'Reading the chip…' }));
      grid.append(card);
      return loadChip(c, i, card);
    });
    await Promise.all(loads);
    grid.removeAttribute('aria-busy');
    initBus(list.chips);
  }

  // ------------------------------------------------------------------- live

  const METRICS = [
    { key: 'temperature_c', title: 'Temperature', unit: '°C', digits: 2 },
    { key: 'humidity_pct', title: 'Humidity', unit: '%', digits: 1 },
    { key: 'pressure_hpa', title: 'Pressure', unit: 'hPa', digits: 1 },
  ];
  const live = { devices: new Map(), events: [], capacity: 300, colours: new Map(), pending: false };

  function colourOf(device) {
    if (!live.colours.has(device)) live.colours.set(device, PALETTE[live.colours.size % PALETTE.length]);
    return live.colours.get(device);
  }

  function addReading(r) {
    if (!live.devices.has(r.device)) live.devices.set(r.device, []);
    const list = live.devices.get(r.device);
    const dup = list.slice(-8).some((x) => x.seq === r.seq && x.received_at === r.received_at);
    if (dup) return;
    list.push(r);
    while (list.length > live.capacity) list.shift();
  }

  function addEvent(e) {
    const dup = live.events.slice(-8).some((x) => x.time === e.time && x.text === e.text && x.kind === e.kind);
    if (dup) return;
    live.events.push(e);
    while (live.events.length > live.capacity) live.events.shift();
  }

  function applySnapshot(s) {
    live.capacity = s.capacity || live.capacity;
    live.devices = new Map();
    for (const [d, list] of Object.entries(s.devices || {})) {
      for (const r of list) addReading(Object.assign({ device: d }, r));
    }
    live.events = [];
    for (const e of s.events || []) addEvent(e);
    renderLive();
  }

  function scheduleRender() {
    if (live.pending) return;
    live.pending = true;
    requestAnimationFrame(() => {
      live.pending = false;
      renderLive();
    });
  }

  function renderLive() {
    renderCharts();
    renderLatest();
    renderEvents();
  }

  function renderCharts() {
    const wrap = $('#charts');
    if (!wrap.childElementCount) {
      for (const m of METRICS) {
        const fig = h('figure', { class: 'chart', 'data-metric': m.key });
        fig.append(h('figcaption', { text: m.title + ' (' + m.unit + ')' }));
        fig.append(svg('svg', { role: 'img', 'aria-label': m.title + ': no reading yet' }));
        fig.append(h('div', { class: 'chart-legend', 'aria-hidden': 'true' }));
        wrap.append(fig);
      }
    }
    for (const m of METRICS) drawChart($('[data-metric="' + m.key + '"]', wrap), m);
  }

  function drawChart(fig, m) {
    const s = $('svg', fig);
    const W = Math.max(200, Math.round(s.getBoundingClientRect().width) || 320);
    const H = 180;
    const pad = { l: 52, r: 12, t: 10, b: 24 };
    s.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    s.replaceChildren();
    const series = [];
    for (const [device, list] of live.devices) {
      const pts = list
        .map((r) => ({ t: Date.parse(r.received_at || r.ts), v: r[m.key] }))
        .filter((p) => isFinite(p.t) && typeof p.v === 'number' && isFinite(p.v));
      if (pts.length) series.push({ device, pts });
    }
    const legend = $('.chart-legend', fig);
    legend.replaceChildren();
    if (!series.length) {
      const t = svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' });
      t.textContent = 'No reading yet';
      s.append(t);
      s.setAttribute('aria-label', m.title + ': no reading yet');
      return;
    }
    let tmin = Infinity, tmax = -Infinity, vmin = Infinity, vmax = -Infinity;
    for (const se of series) {
      for (const p of se.pts) {
        tmin = Math.min(tmin, p.t); tmax = Math.max(tmax, p.t);
        vmin = Math.min(vmin, p.v); vmax = Math.max(vmax, p.v);
      }
    }
    if (tmax - tmin < 1000) { tmin -= 1000; tmax += 1000; }
    const span = Math.max(vmax - vmin, m.key === 'pressure_hpa' ? 1 : 0.5);
    const mid = (vmax + vmin) / 2;
    const step = niceStep(span * 1.2 / 4);
    vmin = Math.floor((mid - span * 0.6) / step) * step;
    vmax = Math.ceil((mid + span * 0.6) / step) * step;
    const ticks = Math.round((vmax - vmin) / step);
    const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    const x = (t) => pad.l + (t - tmin) / (tmax - tmin) * (W - pad.l - pad.r);
    const y = (v) => pad.t + (vmax - v) / (vmax - vmin) * (H - pad.t - pad.b);
    for (let k = 0; k <= ticks; k++) {
      const v = vmin + step * k;
      const yy = y(v);
      s.append(svg('line', { x1: pad.l, x2: W - pad.r, y1: yy, y2: yy, class: 'grid' }));
      const lab = svg('text', { x: pad.l - 6, y: yy + 4, 'text-anchor': 'end' });
      lab.textContent = v.toFixed(decimals);
      s.append(lab);
    }
    s.append(svg('line', { x1: pad.l, x2: pad.l, y1: pad.t, y2: H - pad.b, class: 'axis' }));
    s.append(svg('line', { x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b, class: 'axis' }));
    const t0 = svg('text', { x: pad.l, y: H - 6, 'text-anchor': 'start' });
    t0.textContent = new Date(tmin).toISOString().slice(11, 19);
    const t1 = svg('text', { x: W - pad.r, y: H - 6, 'text-anchor': 'end' });
    t1.textContent = new Date(tmax).toISOString().slice(11, 19) + ' UTC';
    s.append(t0, t1);
    const said = [];
    for (const se of series) {
      const c = colourOf(se.device);
      const d = se.pts.map((p, k) => (k ? 'L' : 'M') + x(p.t).toFixed(1) + ' ' + y(p.v).toFixed(1)).join(' ');
      s.append(svg('path', { d, fill: 'none', stroke: c, 'stroke-width': 2, 'stroke-linejoin': 'round' }));
      const last = se.pts[se.pts.length - 1];
      s.append(svg('circle', { cx: x(last.t), cy: y(last.v), r: 3.5, fill: c }));
      said.push(se.device + ' ' + last.v.toFixed(m.digits) + ' ' + m.unit);
      const item = h('span', { text: se.device });
      item.style.color = c;
      legend.append(item);
    }
    s.setAttribute('aria-label', m.title + ', last values: ' + said.join('; '));
  }

  // 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const f of [1, 2, 2.5, 5, 10]) {
      if (f * p >= raw) return f * p;
    }
    return 10 * p;
  }

  function renderLatest() {
    const tb = $('#latest tbody');
    const rows = [];
    for (const [device, list] of live.devices) {
      const r = list[list.length - 1];
      if (!r) continue;
      const sw = h('span', { class: 'swatch', 'aria-hidden': 'true' });
      sw.style.background = colourOf(device);
      rows.push(h('tr', { 'data-device': device },
        h('td', { 'data-label': 'Device' }, h('span', null, sw, ' ', device)),
        h('td', { 'data-label': 'Seq', text: String(r.seq) }),
        h('td', { 'data-label': 'Temperature', text: fmt(r.temperature_c, 2) + ' °C' }),
        h('td', { 'data-label': 'Humidity', text: fmt(r.humidity_pct, 1) + ' %' }),
        h('td', { 'data-label': 'Pressure', text: fmt(r.pressure_hpa, 1) + ' hPa' }),
        h('td', { 'data-label': 'Measured' }, h('time', { datetime: r.ts, text: timeOf(r.ts) })),
        h('td', { 'data-label': 'Received' }, h('time', { datetime: r.received_at, text: timeOf(r.received_at) }))));
    }
    if (!rows.length) rows.push(h('tr', null, h('td', { colspan: '7', class: 'muted', text: 'No reading yet.' })));
    tb.replaceChildren(...rows);
  }

  function renderEvents() {
    const ol = $('#events');
    const items = live.events.slice(-100).reverse().map((e) => h('li', null,
      h('time', { datetime: e.time, text: timeOf(e.time) }),
      h('span', { class: 'kind', text: e.kind }), e.text));
    if (!items.length) items.push(h('li', { class: 'muted', text: 'No event yet.' }));
    ol.replaceChildren(...items);
  }

  function startLive() {
    const status = $('#live-status');
    renderLive();
    if (!('EventSource' in window)) {
      status.textContent = 'This browser has no server-sent events: the page refreshes every 5 s.';
      const poll = () => getJSON('/api/live').then(applySnapshot).catch(() => {});
      poll();
      setInterval(poll, 5000);
      return;
    }
    const es = new EventSource('/api/live/stream');
    es.addEventListener('open', () => { status.textContent = 'Live: receiving readings as they arrive.'; });
    es.addEventListener('error', () => { status.textContent = 'The live stream is interrupted; reconnecting…'; });
    es.addEventListener('snapshot', (ev) => applySnapshot(JSON.parse(ev.data)));
    es.addEventListener('reading', (ev) => {
      addReading(JSON.parse(ev.data));
      scheduleRender();
    });
    es.addEventListener('event', (ev) => {
      const e = JSON.parse(ev.data);
      addEvent(e);
      renderEvents();
      if (e.kind === 'scenarios') loadScenarios();
    });
    let resize = null;
    window.addEventListener('resize', () => {
      clearTimeout(resize);
      resize = setTimeout(renderCharts, 150);
    });
  }

  // -------------------------------------------------------------- scenarios

  let lastScenarios = '';

  async function loadScenarios() {
    const msg = $('#scenario-msg');
    const table = $('#scenario-table');
    let t;
    try {
      t = await getJSON('/api/scenarios');
    } catch (e) {
      msg.textContent = 'The scenario table could not be loaded: ' + e.message;
      return;
    }
    const key = JSON.stringify(t);
    if (key === lastScenarios) return;
    lastScenarios = key;
    const n = t.scenarios.length;
    const passed = t.scenarios.filter((s) => s.pass).length;
    msg.textContent = t.message ||
      (passed + ' of ' + plural(n, 'scenario') + ' passed' + (t.modified ? ' (table written ' + t.modified.replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC') + ')' : '') + '.');
    table.hidden = n === 0;
    const rows = t.scenarios.map((s) => {
      let ev = s.evidence;
      if (ev === null || ev === undefined) ev = '';
      else if (Array.isArray(ev)) ev = ev.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join('\n');
      else if (typeof ev !== 'string') ev = JSON.stringify(ev, null, 1);
      return h('tr', null,
        h('td', { 'data-label': 'Scenario' }, h('strong', { text: s.name })),
        h('td', { 'data-label': 'Expected', text: s.expected }),
        h('td', { 'data-label': 'Observed', text: s.observed }),
        h('td', { 'data-label': 'Evidence' }, h('span', { class: 'evidence', text: ev })),
        h('td', { 'data-label': 'Result' }, h('span', { class: s.pass ? 'pass' : 'fail', text: s.pass ? '✓ pass' : '✗ FAIL' })));
    });
    $('tbody', table).replaceChildren(...rows);
    const reg = (t.registry || []).map((r) => {
      const cls = r.verdict === 'pass' ? 'pass' : (r.verdict === 'fail' ? 'fail' : 'muted');
      const modes = [...new Set(r.cases.map((c) => c.mode))].join(', ');
      return h('li', null,
        h('code', { text: r.id }), ' ',
        h('span', { class: cls, text: r.verdict }), ' — ',
        r.cases.map((c) => c.name).filter((n, i, a) => a.indexOf(n) === i).join('; '),
        ' (' + modes + ')',
        r.proves.length ? h('span', { class: 'muted', text: ' · proves: ' + r.proves.join(', ') }) : '');
    });
    $('#scenario-registry').replaceChildren(...reg);
  }

  // -------------------------------------------------------------------- bus

  const bus = { transcript: null };

  function initBus(chips) {
    const sel = $('#bus-chip');
    sel.replaceChildren(...chips.map((c) => h('option', { value: c.name, text: c.name })));
    const withKey = chips.find((c) => {
      const v = chipState.views.get(c.name);
      return v && v.exposed_key_slots.length;
    });
    if (withKey) sel.value = withKey.name;
    sel.addEventListener('change', loadTranscript);
    $('#bus-run').addEventListener('change', loadTranscript);
    $('#bus-only-key').addEventListener('change', renderTranscript);
    $('#bus-form').addEventListener('submit', (ev) => ev.preventDefault());
    if (chips.length) loadTranscript();
    else $('#bus-summary').textContent = 'No chip to record.';
  }

  async function loadTranscript() {
    const name = $('#bus-chip').value;
    const run = $('#bus-run').value;
    const summary = $('#bus-summary');
    summary.textContent = 'Recording the bus while ' + name + ' is read…';
    try {
      bus.transcript = await getJSON('/api/chips/' + encodeURIComponent(name) + '/transcript?run=' + run);
    } catch (e) {
      bus.transcript = null;
      summary.textContent = 'No transcript: ' + e.message;
      $('#bus-steps').replaceChildren();
      $('#bus-table').hidden = true;
      return;
    }
    renderTranscript();
  }

  function renderTranscript() {
    const t = bus.transcript;
    if (!t) return;
    const summary = $('#bus-summary');
    summary.replaceChildren(h('strong', { text: t.summary }));
    const label = $('#bus-keylabel');
    label.textContent = t.key.label || '';
    label.hidden = !t.key.label;
    $('#bus-steps').replaceChildren(...t.steps.map((s) => h('li', null,
      s.text, ' — ', plural(s.events, 'bus operation'),
      s.error ? h('span', { class: 'err', text: ' — failed: ' + s.error }) : null)));
    const onlyKey = $('#bus-only-key').checked;
    const rows = [];
    t.events.forEach((e, k) => {
      if (onlyKey && !e.key.length) return;
      const op = { write: 'W', read: 'R', wake: 'WAKE' }[e.dir] || e.dir;
      rows.push(h('tr', { class: e.key.length ? 'has-key' : null },
        h('td', { 'data-label': '#', class: 'num', text: String(k + 1) }),
        h('td', { 'data-label': 'Time', class: 't', text: (e.t_us / 1000).toFixed(3) + ' ms' }),
        h('td', { 'data-label': 'Step', text: e.step }),
        h('td', { 'data-label': 'Op', text: op + (e.acked || e.dir === 'wake' ? '' : ' (NACK)') }),
        h('td', { 'data-label': 'Address', text: e.address + (e.device ? ' ' + e.device : '') }),
        h('td', { 'data-label': 'Bytes', class: 'bytes' }, e.hex ? hexBytes(e.hex, e.key) : '—'),
        h('td', { 'data-label': 'Meaning', class: 'meaning', text: e.note || '' })));
    });
    const table = $('#bus-table');
    $('tbody', table).replaceChildren(...rows);
    table.hidden = rows.length === 0;
  }

  // ------------------------------------------------------------------- main

  function main() {
    loadChips().catch((e) => {
      $('#chip-grid').replaceChildren(h('p', { class: 'alert', text: 'The chips could not be shown: ' + e.message }));
    });
    startLive();
    loadScenarios();
    setInterval(loadScenarios, 15000);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main);
  else main();
})();
