// Progressive enhancement for the offline portal: drop a request file onto the form. Without this
// script the file picker and the paste box work the same.
document.addEventListener('DOMContentLoaded', () => {
  const zone = document.querySelector('[data-drop-zone]');
  const input = zone && zone.querySelector('input[type=file]');
  if (!zone || !input) return;
  const stop = (e) => { e.preventDefault(); e.stopPropagation(); };
  ['dragenter', 'dragover'].forEach((type) => zone.addEventListener(type, (e) => { stop(e); zone.classList.add('drop-active'); }));
  ['dragleave', 'drop'].forEach((type) => zone.addEventListener(type, (e) => { stop(e); zone.classList.remove('drop-active'); }));
  zone.addEventListener('drop', (e) => {
    if (e.dataTransfer && e.dataTransfer.files.length) input.files = e.dataTransfer.files;
  });
});
