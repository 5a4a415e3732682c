import { LEVELS, levelIndex, SEVERITIES, severityIndex, StenosisError } from '../../lib';

describe('levels and severities', () => {
  test('levels accept RSNA, snake-case and index spellings', () => {
    expect(LEVELS).toEqual(['L1/L2', 'L2/L3', 'L3/L4', 'L4/L5', 'L5/S1']);
    expect(levelIndex('L1/L2')).toBe(0);
    expect(levelIndex('l4_l5')).toBe(3);
    expect(levelIndex(' L5/S1 ')).toBe(4);
    expect(levelIndex(2)).toBe(2);
  });

  test('an unknown level names where it came from and what was expected', () => {
    expect(() => levelIndex('L6/L7', 'train.csv row 12')).toThrow(StenosisError);
    expect(() => levelIndex('L6/L7', 'train.csv row 12')).toThrow(
      /"L6\/L7" in train.csv row 12: expected one of L1\/L2/,
    );
    expect(() => levelIndex(5)).toThrow(/Unknown level 5/);
    expect(() => levelIndex(1.5)).toThrow(/ERR|Unknown level/);
  });

  test('severities accept reference and RSNA spellings', () => {
    expect(SEVERITIES).toEqual(['normal_mild', 'moderate', 'severe']);
    expect(severityIndex('normal_mild')).toBe(0);
    expect(severityIndex('Normal/Mild')).toBe(0);
    expect(severityIndex('Moderate')).toBe(1);
    expect(severityIndex('severe')).toBe(2);
    try {
      severityIndex('bad', 'val.csv row 3');
      throw new Error('no error');
    } catch (error) {
      expect((error as StenosisError).code).toBe('ERR_UNKNOWN_SEVERITY');
      expect((error as Error).message).toMatch(/"bad" in val.csv row 3/);
    }
  });
});
