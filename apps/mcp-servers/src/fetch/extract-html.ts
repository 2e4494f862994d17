import { convert } from 'html-to-text';
import { Parser } from 'htmlparser2';

export interface ExtractedPage {
  readonly title: string;
  readonly text: string;
  readonly links: { href: string; text: string }[];
}

/** Title, visible text and absolute links of an HTML page. */
export function extractHtml(html: string, baseUrl: string): ExtractedPage {
  let title = '';
  let inTitle = false;
  const links: { href: string; text: string }[] = [];
  let current: { href: string; text: string } | undefined;
  const parser = new Parser(
    {
      onopentag(name, attrs) {
        if (name === 'title') inTitle = true;
        if (name === 'a' && attrs['href']) {
          try {
            const href = new URL(attrs['href'], baseUrl);
            if (href.protocol === 'http:' || href.protocol === 'https:') current = { href: href.toString(), text: '' };
          } catch {
            // An unparsable href is not a link anyone can follow.
          }
        }
      },
      ontext(text) {
        if (inTitle) title += text;
        if (current) current.text += text;
      },
      onclosetag(name) {
        if (name === 'title') inTitle = false;
        if (name === 'a' && current) {
          links.push({ href: current.href, text: current.text.replace(/\s+/g, ' ').trim() });
          current = undefined;
        }
      },
    },
    { decodeEntities: true },
  );
  parser.end(html);
  const text = convert(html, {
    wordwrap: false,
    selectors: [
      { selector: 'a', options: { ignoreHref: true } },
      { selector: 'img', format: 'skip' },
      { selector: 'script', format: 'skip' },
      { selector: 'style', format: 'skip' },
    ],
  });
  return { title: title.replace(/\s+/g, ' ').trim(), text: text.trim(), links };
}
