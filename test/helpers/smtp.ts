import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** A real SMTP server on loopback; every mail it accepts is parsed (mailparser) as a mail client would. */
export async function startSmtp() {
  const raw: string[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, _session, callback) {
      let data = '';
      stream.on('data', (c: Buffer) => (data += c.toString()));
      stream.on('end', () => {
        raw.push(data);
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.server.address() as AddressInfo).port,
    /** The mails received so far, parsed, and forgotten. */
    async take(): Promise<ParsedMail[]> {
      const mails = await Promise.all(raw.map((r) => simpleParser(r)));
      raw.length = 0;
      return mails;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export const fromOf = (m: ParsedMail) => m.from?.value[0];
export const replyToOf = (m: ParsedMail) => m.replyTo?.value[0]?.address;
export const toOf = (m: ParsedMail) => (Array.isArray(m.to) ? m.to[0] : m.to)?.value[0]?.address;
