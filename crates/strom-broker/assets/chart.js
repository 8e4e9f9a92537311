// The console's live throughput chart (served by the broker at /chart.js, built into the
// binary; no library, no CDN). Polls the topic's counters (the `rates` URL on the canvas,
// the same counters /metrics exposes) once a second, turns each two samples into
// per-second rates, and draws the last minute of bytes and records in and out on the
// canvas. The latest rates are also written as text into #throughput-now.
'use strict';
(function () {
  var canvas = document.getElementById('throughput');
  if (!canvas || !canvas.getContext) return;
  var url = canvas.getAttribute('data-rates');
  var now = document.getElementById('throughput-now');
  var POINTS = 60;
  var SERIES = [
    { key: 'records_in', label: 'records in/s', color: '#1f77b4', axis: 'records' },
    { key: 'records_out', label: 'records out/s', color: '#2ca02c', axis: 'records' },
    { key: 'bytes_in', label: 'bytes in/s', color: '#ff7f0e', axis: 'bytes' },
    { key: 'bytes_out', label: 'bytes out/s', color: '#d62728', axis: 'bytes' }
  ];
  var rates = [];
  var last = null;
  var failures = 0;

  function human (n) {
    if (n >= 1e9) return (n / 1e9).toFixed(1) + 'G';
    if (n >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (n >= 1e3) return (n / 1e3).toFixed(1) + 'k';
    return String(Math.round(n));
  }

  function draw () {
    var ctx = canvas.getContext('2d');
    var w = canvas.width;
    var h = canvas.height;
    var left = 56;
    var right = 56;
    var top = 24;
    var bottom = 20;
    ctx.clearRect(0, 0, w, h);
    ctx.font = '11px sans-serif';
    ctx.strokeStyle = '#ccc';
    ctx.strokeRect(left, top, w - left - right, h - top - bottom);
    var max = { records: 1, bytes: 1 };
    rates.forEach(function (r) {
      SERIES.forEach(function (s) { max[s.axis] = Math.max(max[s.axis], r[s.key]); });
    });
    ctx.fillStyle = '#555';
    ctx.textAlign = 'right';
    ctx.fillText(human(max.records) + ' rec/s', left - 4, top + 8);
    ctx.fillText('0', left - 4, h - bottom);
    ctx.textAlign = 'left';
    ctx.fillText(human(max.bytes) + ' B/s', w - right + 4, top + 8);
    ctx.fillText('0', w - right + 4, h - bottom);
    var x = left;
    SERIES.forEach(function (s) {
      ctx.fillStyle = s.color;
      ctx.fillRect(x, 6, 10, 10);
      ctx.fillStyle = '#222';
      ctx.fillText(s.label, x + 14, 15);
      x += ctx.measureText(s.label).width + 34;
    });
    var step = (w - left - right) / (POINTS - 1);
    SERIES.forEach(function (s) {
      if (rates.length < 2) return;
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      rates.forEach(function (r, i) {
        var px = left + (POINTS - rates.length + i) * step;
        var py = h - bottom - (r[s.key] / max[s.axis]) * (h - top - bottom);
        if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
      });
      ctx.stroke();
    });
  }

  function sample (s) {
    if (last !== null && s.time_ms > last.time_ms) {
      var seconds = (s.time_ms - last.time_ms) / 1000;
      var r = {};
      SERIES.forEach(function (series) {
        r[series.key] = Math.max(0, s[series.key] - last[series.key]) / seconds;
      });
      rates.push(r);
      if (rates.length > POINTS) rates.shift();
      if (now) {
        now.textContent = SERIES.map(function (series) {
          return series.label + ': ' + r[series.key].toFixed(1);
        }).join(' · ');
        now.setAttribute('data-samples', String(rates.length));
      }
      draw();
    }
    last = s;
  }

  function poll () {
    fetch(url, { cache: 'no-store', credentials: 'same-origin' })
      .then(function (response) {
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json();
      })
      .then(function (s) { failures = 0; sample(s); })
      .catch(function (error) {
        failures += 1;
        if (now) now.textContent = 'cannot read the counters: ' + error.message;
      })
      .then(function () { setTimeout(poll, failures > 5 ? 5000 : 1000); });
  }

  draw();
  poll();
})();
