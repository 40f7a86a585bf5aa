// Files: choose them in a form, send them once the ticket or the reply exists, list them and
// download them. Downloads go through fetch with the bearer token and are saved from a blob
// URL: the token never appears in a URL.
import { getBlob, upload } from './api.js';
import { announce, field, h } from './dom.js';

/** "512 bytes", "12.5 KB", "3.2 MB" (1 KB = 1024 bytes). */
export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} ${bytes === 1 ? 'byte' : 'bytes'}`;
  const units = ['KB', 'MB', 'GB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** A labelled file input (several files) that lists what was chosen and shows the upload. */
export function filePicker({ id, label, hint }) {
  const input = h('input', { type: 'file', multiple: true, name: 'files' });
  const chosen = h('ul', { class: 'file-list chosen-files', hidden: true, 'aria-label': 'Chosen files' });
  const bar = h('progress', { max: '100', value: '0', hidden: true, 'aria-label': 'Upload progress' });
  const status = h('p', { class: 'upload-status', role: 'status' });

  function showChosen() {
    chosen.replaceChildren(...[...input.files].map((file) => h('li', { class: 'file' },
      h('span', { class: 'file-name' }, file.name),
      h('span', { class: 'file-size' }, formatSize(file.size)))));
    chosen.hidden = input.files.length === 0;
  }
  input.addEventListener('change', showChosen);

  const element = h('div', { class: 'file-picker' },
    field({ id, label, control: input, hint }), chosen, bar, status);
  return {
    element,
    get files() { return [...input.files]; },
    clear() {
      input.value = '';
      showChosen();
      bar.hidden = true;
      status.textContent = '';
    },
    progress(text, fraction) {
      status.textContent = text;
      bar.hidden = fraction === null;
      if (fraction !== null) bar.value = Math.round(fraction * 100);
    },
  };
}

/**
 * Send `files` to the ticket (to one comment with `commentId`), one at a time, telling
 * `picker` how it goes. Resolves with the files that could not be sent, each with the error.
 */
export async function sendFiles(ticketId, files, { commentId, picker } = {}) {
  const failures = [];
  const path = `/tickets/${encodeURIComponent(ticketId)}/attachments`;
  for (const [index, file] of files.entries()) {
    const counter = files.length > 1 ? ` (${index + 1} of ${files.length})` : '';
    const report = (fraction) => {
      if (picker) picker.progress(`Uploading ${file.name}${counter}… ${Math.round(fraction * 100)}%`, fraction);
    };
    report(0);
    const form = new FormData();
    form.append('file', file, file.name);
    if (commentId) form.append('comment_id', commentId);
    try {
      await upload(path, form, { onProgress: report });
    } catch (error) {
      failures.push({ file, error });
      if (error.status === 401) break; // signed out: the rest would fail the same way
    }
  }
  if (picker) picker.progress('', null);
  return failures;
}

/** One sentence about files that could not be attached, with the server's reasons. */
export function failureMessage(failures) {
  const reasons = failures.map(({ file, error }) => `${file.name}: ${error.message}`);
  return `${failures.length === 1 ? 'A file' : `${failures.length} files`} could not be attached. ${reasons.join(' ')}`;
}

async function download(file, button) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    const blob = await getBlob(`/attachments/${encodeURIComponent(file.id)}`);
    // Saved, never shown: the blob has no type a browser would render.
    const url = URL.createObjectURL(new Blob([blob], { type: 'application/octet-stream' }));
    const link = h('a', { href: url, download: file.filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    if (error.status !== 401) announce(`${file.filename} could not be downloaded: ${error.message}`, 'error');
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/** A list of files, each a download button with its size (and "staff only" for files of
 *  internal notes). */
export function fileList(files, { label = 'Files' } = {}) {
  return h('ul', { class: 'file-list', 'aria-label': label }, files.map((file) => {
    const button = h('button', {
      type: 'button', class: 'link-button file-name', 'aria-label': `Download ${file.filename}`,
      dataset: { attachmentId: file.id },
    }, file.filename);
    button.addEventListener('click', () => download(file, button));
    return h('li', { class: 'file' },
      button,
      h('span', { class: 'file-size' }, formatSize(file.size)),
      file.internal ? h('span', { class: 'badge internal-badge small' }, 'staff only') : null);
  }));
}
