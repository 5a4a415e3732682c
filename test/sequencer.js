const Sequencer = require('@jest/test-sequencer').default;

const ORDER = ['unit', 'integration', 'parity', 'leak', 'types', 'slow'];

/** Runs test folders in a fixed order: fast feedback first, slow package and backbone checks last. */
class FolderSequencer extends Sequencer {
  sort(tests) {
    const rank = (test) => {
      const index = ORDER.findIndex((folder) => test.path.includes(`/test/${folder}/`));
      return index === -1 ? ORDER.length : index;
    };
    return [...tests].sort((a, b) => rank(a) - rank(b) || a.path.localeCompare(b.path));
  }
}

module.exports = FolderSequencer;
