// The usage pages' charts (app/controllers/usage.ts): chart.js (served from our origin as
// /static/vendor/chart.umd.min.js) draws the figures of the page's #usage-data element (JSON in
// its data-chart attribute, escaped like any attribute). The table below the
// charts carries the same figures for screen readers and when scripts are off; the charts' section
// stays hidden unless they could be drawn.
document.addEventListener('DOMContentLoaded', () => {
  const section = document.querySelector('[data-usage-charts]');
  const source = document.getElementById('usage-data');
  if (!section || !source || typeof window.Chart !== 'function') return;
  let data;
  try {
    data = JSON.parse(source.dataset.chart);
  } catch {
    return;
  }
  const style = getComputedStyle(document.documentElement);
  const colour = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  const primary = colour('--brand-primary', '#1f4e79');
  const accent = colour('--brand-accent', '#d9822b');
  const danger = colour('--danger-bg', '#b42318');
  const text = colour('--text', '#1b1b1b');
  const muted = colour('--muted', '#666');
  window.Chart.defaults.color = text;
  window.Chart.defaults.borderColor = colour('--border', '#ccc');
  const common = {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    interaction: { mode: 'index', intersect: false },
    scales: { y: { beginAtZero: true, grace: '5%', ticks: { precision: 0 } } },
  };
  const line = (label, values, color, extra = {}) => ({
    label,
    data: values,
    borderColor: color,
    backgroundColor: color,
    pointRadius: 0,
    borderWidth: 2,
    spanGaps: false,
    ...extra,
  });
  const seats = section.querySelector('canvas[data-usage-chart="seats"]');
  const peaks = section.querySelector('canvas[data-usage-chart="peaks"]');
  section.hidden = false;
  if (seats)
    new window.Chart(seats, {
      type: 'line',
      data: {
        labels: data.labels,
        datasets: [
          line(data.text.seatsUsed, data.series.seatsUsed, primary),
          line(data.text.seatsBought, data.series.seatsBought, muted, { borderDash: [6, 4], stepped: true }),
        ],
      },
      options: common,
    });
  if (peaks)
    new window.Chart(peaks, {
      type: 'bar',
      data: {
        labels: data.labels,
        datasets: [
          { type: 'line', ...line(data.text.floatingPeak, data.series.floatingPeak, accent) },
          { label: data.text.refusals, data: data.series.refusals, backgroundColor: danger },
        ],
      },
      options: common,
    });
});
