// Model output is untrusted. Raw HTML in it is shown as text (a reply that says
// "<script>" displays those characters); the Markdown that marked renders then goes
// through DOMPurify (no script, handlers, styles, forms or images), and the page's CSP
// forbids inline script as a third wall.
import DOMPurify from 'dompurify';
import { Marked } from 'marked';

const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

const marked = new Marked({
  gfm: true,
  breaks: true,
  async: false,
  renderer: {
    html(token) { return escapeHtml(token.text ?? token.raw ?? ''); },
  },
});

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('rel', 'noopener noreferrer nofollow');
    node.setAttribute('target', '_blank');
  }
});

export function renderMarkdown(text) {
  return DOMPurify.sanitize(marked.parse(text), {
    FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'img', 'iframe',
                  'object', 'embed', 'svg', 'math'],
    FORBID_ATTR: ['style'],
  });
}
