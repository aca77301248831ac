// The confirmation dialog of irreversible actions (app/controllers/confirm.ts). A form marked
// data-confirm is first posted without `confirmed`: that changes nothing and answers the confirm
// page, whose texts (in the user's language) this script shows in a modal <dialog>. "Confirm" posts
// the form again with confirmed=1; "Cancel" or Escape closes the dialog and nothing happens.
// Without this script (or when anything here fails) the form posts as it is and the confirm page asks.
(() => {
  let dialog;

  const build = () => {
    dialog = document.createElement('dialog');
    dialog.className = 'confirm-dialog';
    dialog.setAttribute('aria-labelledby', 'confirm-dialog-title');
    dialog.setAttribute('aria-describedby', 'confirm-dialog-text');
    const title = document.createElement('h2');
    title.id = 'confirm-dialog-title';
    const text = document.createElement('p');
    text.id = 'confirm-dialog-text';
    const buttons = document.createElement('form');
    buttons.method = 'dialog';
    buttons.className = 'actions';
    const confirm = document.createElement('button');
    confirm.type = 'submit';
    confirm.value = 'confirm';
    confirm.className = 'button button-danger';
    const cancel = document.createElement('button');
    cancel.type = 'submit';
    cancel.value = 'cancel';
    cancel.className = 'button button-secondary';
    buttons.append(confirm, cancel);
    dialog.append(title, text, buttons);
    document.body.append(dialog);
    return dialog;
  };

  const ask = (page, opener, proceed) => {
    const box = page.querySelector('[data-confirmation]');
    if (!box) return false;
    const d = dialog || build();
    const pick = (sel) => box.querySelector(sel)?.textContent.trim() ?? '';
    d.querySelector('h2').textContent = pick('[data-confirm-title]');
    d.querySelector('p').textContent = pick('[data-confirm-text]');
    d.querySelector('button[value="confirm"]').textContent = pick('[data-confirm-button]');
    const cancel = d.querySelector('button[value="cancel"]');
    cancel.textContent = pick('[data-confirm-cancel]');
    d.returnValue = '';
    d.addEventListener(
      'close',
      () => {
        if (d.returnValue === 'confirm') proceed();
        else opener?.focus();
      },
      { once: true },
    );
    d.showModal();
    cancel.focus();
    return true;
  };

  document.addEventListener('submit', async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-confirm')) return;
    if (typeof HTMLDialogElement !== 'function' || !window.fetch || !window.DOMParser) return;
    event.preventDefault();
    // One question at a time: a second click while asking (or a double click) does nothing.
    if (form.dataset.asking || dialog?.open) return;
    form.dataset.asking = 'yes';
    const opener = event.submitter || form.querySelector('button');
    const asIs = () => form.submit();
    try {
      const answer = await fetch(form.action, {
        method: 'POST',
        body: new URLSearchParams(new FormData(form)),
        credentials: 'same-origin',
        headers: { Accept: 'text/html' },
      });
      // A route without its confirmation guard would have acted already: show where it went, never post twice.
      if (answer.redirected) return window.location.assign(answer.url);
      if (!answer.ok) return asIs();
      const page = new DOMParser().parseFromString(await answer.text(), 'text/html');
      const shown = ask(page, opener, () => {
        const flag = document.createElement('input');
        flag.type = 'hidden';
        flag.name = 'confirmed';
        flag.value = '1';
        form.append(flag);
        form.submit();
      });
      if (!shown) asIs();
    } catch {
      asIs();
    } finally {
      delete form.dataset.asking;
    }
  });
})();
