/**
 * 32-bit FNV-1a: the partition of a key (an execution id, a task id) must be the same in every
 * process and release, since the workflow engines and the task dispatchers lease partitions by it.
 */
export function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}
