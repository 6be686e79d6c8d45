-- Target 1: time at block density d / time causal-full <= 1.2 * (d / causal block density), T >= 2048
WITH k AS (
  SELECT t.seq_len, t.pass, p.value AS pattern, t.median_ms, t.block_density
  FROM trial_summary t JOIN params p ON p.trial_id = t.trial_id AND p.name = 'backend.pattern'
  WHERE t.sweep = 'kernel-density' AND t.backend = 'masks')
SELECT a.seq_len AS T, a.pass, a.pattern, printf('%.4f', a.block_density) AS block_density,
  printf('%.2f', a.median_ms) AS ms, printf('%.2f', c.median_ms) AS causal_ms,
  printf('%.3f', a.median_ms / c.median_ms) AS time_ratio,
  printf('%.3f', 1.2 * a.block_density / c.block_density) AS allowed,
  CASE WHEN a.median_ms / c.median_ms <= 1.2 * a.block_density / c.block_density THEN 'met' ELSE 'MISSED' END AS target
FROM k a JOIN k c ON c.seq_len = a.seq_len AND c.pass = a.pass AND c.pattern = 'causal'
WHERE a.pattern != 'causal' AND a.seq_len >= 2048 ORDER BY a.pass, a.seq_len, a.block_density;
