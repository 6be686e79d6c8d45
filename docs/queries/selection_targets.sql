-- Issue 17's kernel targets: topk on the block-selection path (granularity = query_block, hard
-- mode) against the causal kernel in the same run. speedup = causal ms / topk ms (the topk time
-- includes its selection); select_pct = topk's time/select_ms as a % of the causal forward.
WITH c AS (
  SELECT seq_len, pass, median_ms FROM trial_summary WHERE sweep = 'selection' AND backend = 'masks'),
s AS (
  SELECT t.trial_id, t.seq_len, t.pass, t.median_ms, t.block_density, t.cv,
    CAST((SELECT value FROM params p WHERE p.trial_id = t.trial_id AND p.name = 'backend.k') AS INTEGER) AS k,
    (SELECT value FROM final_metrics f WHERE f.trial_id = t.trial_id AND f.metric = 'time/select_ms') AS select_ms
  FROM trial_summary t WHERE t.sweep = 'selection' AND t.backend = 'topk'),
causal_fwd AS (SELECT seq_len, median_ms FROM c WHERE pass = 'fwd'),
causal_density AS (
  SELECT seq_len, block_density FROM trial_summary WHERE sweep = 'selection' AND backend = 'masks' AND pass = 'fwd')
SELECT s.seq_len AS T, s.k, s.pass, printf('%.3f', s.block_density / cd.block_density) AS causal_fraction,
  printf('%.1f', c.median_ms) AS causal_ms, printf('%.1f', s.median_ms) AS topk_ms,
  printf('%.2fx', c.median_ms / s.median_ms) AS speedup, printf('%.2f', s.select_ms) AS select_ms,
  printf('%.1f%%', 100.0 * s.select_ms / cf.median_ms) AS select_pct_of_causal_fwd, printf('%.2f', s.cv) AS topk_cv
FROM s JOIN c ON c.seq_len = s.seq_len AND c.pass = s.pass
JOIN causal_fwd cf ON cf.seq_len = s.seq_len JOIN causal_density cd ON cd.seq_len = s.seq_len
ORDER BY s.seq_len, s.k, s.pass;
