/** The launcher process harness lives in @switchyard/testing (the benches use it too). */
export * from '@switchyard/testing';
