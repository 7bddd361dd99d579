import type { Redis } from 'ioredis';

type ScriptCommand = (...numKeysKeysAndArgs: (string | number)[]) => Promise<unknown>;

/**
 * A Lua script run through ioredis' `defineCommand`: sent by EVALSHA, the text going out only when Redis answers
 * NOSCRIPT. The scheduler runs its scripts hundreds of times a second: EVAL would ship and hash the whole text
 * every time. Scripts take any number of keys.
 */
export class RedisScript {
  /** @param name the command's name on the connection; unique across ckpt (prefixed `ckpt`). */
  constructor(
    readonly name: string,
    private readonly lua: string,
  ) {}

  /**
   * Registers the script on a connection (once; later calls do nothing). Do it when the class that runs it is made,
   * before it sends anything: an auto-pipeline already started on the connection would not know a command defined
   * after it (ioredis issue 1931), and its replies would be misaligned.
   */
  defineOn(redis: Redis): void {
    if (typeof this.commandOf(redis) !== 'function') redis.defineCommand(this.name, { lua: this.lua });
  }

  run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    const command = this.commandOf(redis);
    if (!command) throw new Error(`Redis script ${this.name} is not defined on this connection (RedisScript.defineOn)`);
    // Without numberOfKeys, ioredis takes the key count as the first argument of each call.
    return command.call(redis, keys.length, ...keys, ...args);
  }

  private commandOf(redis: Redis): ScriptCommand | undefined {
    return (redis as unknown as Record<string, ScriptCommand | undefined>)[this.name];
  }
}
