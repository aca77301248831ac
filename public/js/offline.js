// Progressive enhancement for the offline portal: drop a request file onto the form. Without this
// script the file picker and the paste box work the same.
document.addEventListener('DOMContentLoaded', () => {
  const zone = document.querySelector('[data-drop-zone]');
  const input = zone?.querySelector('input[type=file]');
  if (!zone || !input) return;
  const stop = (e) => {
    e.preventDefault();
    e.stopPropagation();
  };
  for (const type of ['dragenter', 'dragover']) {
    zone.addEventListener(type, (e) => {
      stop(e);
      zone.classList.add('drop-active');
    });
  }
  for (const type of ['dragleave', 'drop']) {
    zone.addEventListener(type, (e) => {
      stop(e);
      zone.classList.remove('drop-active');
    });
  }
  zone.addEventListener('drop', (e) => {
    if (e.dataTransfer?.files.length) input.files = e.dataTransfer.files;
  });
});
