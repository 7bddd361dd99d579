import type { Command } from 'commander';
import { ApiClient } from './api-client.js';
import { FeedClient, type FeedClientOptions } from './feed-client.js';
import { colors, useColor, type Colors } from './format.js';

/** The options every client command takes (declared on the program). */
export interface GlobalOptions {
  url: string;
  token?: string;
  json?: boolean;
}

/** Everything a command needs: the API client, a way to open the feed, and where and how to print. */
export interface CliContext {
  readonly options: GlobalOptions;
  readonly json: boolean;
  readonly client: ApiClient;
  /** Colors for stdout (off when piped or NO_COLOR). */
  readonly c: Colors;
  /** Colors for stderr. */
  readonly cErr: Colors;
  /** True when progress may be drawn as bars (stderr is a terminal and output is not --json). */
  readonly interactive: boolean;
  out(text: string): void;
  err(text: string): void;
  printJson(value: unknown): void;
  /** A feed client on the same server with the same token. */
  feed(options: Omit<FeedClientOptions, 'url' | 'token'>): FeedClient;
}

export function contextOf(command: Command): CliContext {
  const options = command.optsWithGlobals<GlobalOptions>();
  const json = Boolean(options.json);
  return {
    options,
    json,
    client: new ApiClient({ url: options.url, token: options.token }),
    c: colors(!json && useColor(process.stdout)),
    cErr: colors(useColor(process.stderr)),
    interactive: !json && Boolean(process.stderr.isTTY),
    out: (text) => process.stdout.write(text.endsWith('\n') ? text : text + '\n'),
    err: (text) => process.stderr.write(text.endsWith('\n') ? text : text + '\n'),
    printJson: (value) => process.stdout.write(JSON.stringify(value, null, 2) + '\n'),
    feed: (feedOptions) => new FeedClient({ ...feedOptions, url: options.url, token: options.token }),
  };
}
