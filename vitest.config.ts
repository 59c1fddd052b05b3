import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Installs the Debian packages some tests run for real (redis-server, nginx) when missing.
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Real sockets on a 2-core machine: a few files at a time keeps timing honest.
    maxWorkers: 2,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
