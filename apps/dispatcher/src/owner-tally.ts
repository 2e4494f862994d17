/** Tasks and bytes of context per owner (whose share of the queue they count against), and in all. */
export class OwnerTally {
  private readonly byOwner = new Map<string, { count: number; bytes: number }>();
  count = 0;
  bytes = 0;

  /** Add (or, with negative numbers, take away) `count` tasks and `bytes` of `owner`'s. */
  add(owner: string, count: number, bytes: number): void {
    this.count += count;
    this.bytes += bytes;
    const now = this.of(owner);
    const next = { count: now.count + count, bytes: now.bytes + bytes };
    if (next.count <= 0) this.byOwner.delete(owner);
    else this.byOwner.set(owner, next);
  }

  of(owner: string): { count: number; bytes: number } {
    return this.byOwner.get(owner) ?? { count: 0, bytes: 0 };
  }
}
