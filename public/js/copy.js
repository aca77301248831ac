// Copy buttons for codes: shown only where the clipboard can be used (the code stays selectable).
document.addEventListener('DOMContentLoaded', () => {
  const status = document.querySelector('[data-copy-status]');
  for (const button of document.querySelectorAll('button[data-copy]')) {
    const target = document.getElementById(button.dataset.copy);
    if (!target || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(target.textContent.trim());
        if (status) status.textContent = button.dataset.copied || 'Copied.';
      } catch {
        if (status) status.textContent = '';
      }
    });
  }
});
