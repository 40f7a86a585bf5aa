// Passwordless sign-in: email -> 6-digit code -> token (kept in sessionStorage).
import { api, session, waitText } from '../api.js';
import {
  announce, busy, clearFieldErrors, field, formError, h, setFieldError, setFormError,
} from '../dom.js';

const EMAIL_KEY = 'helpdesk.signin-email';

export function renderSignIn(root, { appName, onSignedIn }) {
  const pending = sessionStorage.getItem(EMAIL_KEY);
  if (pending) codeStep(root, { appName, onSignedIn, email: pending, message: null });
  else emailStep(root, { appName, onSignedIn });
}

function shell(root, title, ...children) {
  const heading = h('h1', { tabindex: '-1' }, title);
  root.replaceChildren(h('section', { class: 'page narrow card signin' }, heading, ...children));
  return heading;
}

function rateLimitText(error) {
  return `Too many sign-in codes were requested for this address. Try again in ${waitText(error.retryAfter)}.`;
}

function emailStep(root, { appName, onSignedIn, email = '' }) {
  const input = h('input', {
    type: 'email', name: 'email', autocomplete: 'email', required: true, value: email,
    spellcheck: 'false', autocapitalize: 'off',
  });
  const form = h('form', { novalidate: true, 'aria-label': 'Sign in with your email' },
    field({ id: 'signin-email', label: 'Email address', control: input }),
    formError(),
    h('button', { type: 'submit', class: 'button primary' }, 'Email me a code'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    const address = input.value.trim();
    if (!address || !address.includes('@')) {
      setFieldError(form, 'signin-email', 'Enter your email address, like name@example.com.');
      input.focus();
      return;
    }
    try {
      const answer = await busy(form, () => api('POST', '/auth/request-otp', { body: { email: address } }));
      sessionStorage.setItem(EMAIL_KEY, address);
      codeStep(root, { appName, onSignedIn, email: address, message: answer.message });
    } catch (error) {
      if (error.status === 422) {
        setFieldError(form, 'signin-email', 'That does not look like an email address.');
        input.focus();
      } else if (error.status === 429) {
        setFormError(form, rateLimitText(error));
      } else {
        setFormError(form, error.message);
      }
    }
  });
  shell(root, `Sign in to ${appName}`,
    h('p', null, 'No password needed: we email you a 6-digit code.'),
    form);
  input.focus();
}

function codeStep(root, { appName, onSignedIn, email, message }) {
  const input = h('input', {
    type: 'text', name: 'otp', inputmode: 'numeric', autocomplete: 'one-time-code',
    maxlength: '6', pattern: '[0-9]{6}', required: true, class: 'code-input',
  });
  const form = h('form', { novalidate: true, 'aria-label': 'Enter your sign-in code' },
    field({
      id: 'signin-code', label: '6-digit code', control: input,
      hint: `Sent to ${email}. Codes expire after a few minutes; only the latest one works.`,
    }),
    formError(),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'button primary' }, 'Sign in'),
      h('button', { type: 'button', class: 'button secondary', id: 'resend-code', onclick: resend }, 'Send a new code'),
      h('button', { type: 'button', class: 'link-button', id: 'change-email', onclick: changeEmail }, 'Use a different email')));

  async function resend() {
    clearFieldErrors(form);
    try {
      await busy(form, () => api('POST', '/auth/request-otp', { body: { email } }));
      announce(`A new code is on its way to ${email}.`, 'success');
      input.value = '';
      input.focus();
    } catch (error) {
      setFormError(form, error.status === 429 ? rateLimitText(error) : error.message);
    }
  }

  function changeEmail() {
    sessionStorage.removeItem(EMAIL_KEY);
    emailStep(root, { appName, onSignedIn, email });
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    const code = input.value.replace(/\s+/g, '');
    if (!/^\d{6}$/.test(code)) {
      setFieldError(form, 'signin-code', 'Enter the 6 digits from the email.');
      input.focus();
      return;
    }
    try {
      const answer = await busy(form, () => api('POST', '/auth/verify-otp', { body: { email, otp: code } }));
      sessionStorage.removeItem(EMAIL_KEY);
      session.token = answer.access_token;
      onSignedIn(answer.user);
    } catch (error) {
      if (error.status === 400) {
        setFieldError(form, 'signin-code',
          'That code is wrong or has expired. Check the latest email, or send a new code.');
        input.select();
        input.focus();
      } else if (error.status === 429) {
        setFormError(form, `Too many attempts. Try again in ${waitText(error.retryAfter)}.`);
      } else if (error.status === 422) {
        setFieldError(form, 'signin-code', 'Enter the 6 digits from the email.');
      } else {
        setFormError(form, error.message);
      }
    }
  });

  shell(root, 'Check your email',
    message ? h('p', { class: 'lead' }, message) : null,
    form);
  input.focus();
}
