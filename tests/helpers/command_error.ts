/**
 * For tests that call core code directly: the Redis reply text of the CommandError it throws.
 */
import { expect } from "bun:test";
import { CommandError } from "../../core/errors.ts";

/** The reply text of the CommandError thrown by `run`; fails the test if it does not throw one. */
export function replyOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(CommandError);
    return (error as CommandError).reply;
  }
  throw new Error("expected a CommandError");
}
