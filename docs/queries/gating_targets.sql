-- Issue 17's gating target: in hard mode gating's time should follow its executed density within
-- 1.2x of ideal, where ideal = the causal kernel's time in the same run scaled by the tiles
-- gating's kernel counted (block_density, from the kernel's own tile count) over the causal
-- kernel's. off_ideal = gating ms / ideal ms.
WITH c AS (
  SELECT seq_len, pass, median_ms, block_density FROM trial_summary WHERE sweep = 'selection' AND backend = 'masks'),
g AS (
  SELECT seq_len, pass, median_ms, block_density, cv FROM trial_summary WHERE sweep = 'selection' AND backend = 'gating')
SELECT g.seq_len AS T, g.pass, printf('%.3f', g.block_density / c.block_density) AS causal_fraction,
  printf('%.2f', c.median_ms) AS causal_ms, printf('%.2f', g.median_ms) AS gating_ms,
  printf('%.2f', c.median_ms * g.block_density / c.block_density) AS ideal_ms,
  printf('%.2fx', g.median_ms / (c.median_ms * g.block_density / c.block_density)) AS off_ideal, printf('%.2f', g.cv) AS gating_cv
FROM g JOIN c ON c.seq_len = g.seq_len AND c.pass = g.pass
ORDER BY g.seq_len, g.pass;
