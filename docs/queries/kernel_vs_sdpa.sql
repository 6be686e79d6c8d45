-- Target 2: causal-full kernel vs LibTorch's own attention (same run, same shapes; on 2.x CPU its
-- flash kernel). speedup = sdpa ms / kernel ms; kernel_over_sdpa_mib <= 1: the kernel uses no more.
WITH k AS (
  SELECT t.seq_len, t.pass, t.median_ms, t.peak_mib FROM trial_summary t
  JOIN params p ON p.trial_id = t.trial_id AND p.name = 'backend.pattern'
  WHERE t.sweep = 'kernel-density' AND t.backend = 'masks' AND p.value = 'causal'),
d AS (SELECT seq_len, pass, median_ms, peak_mib FROM trial_summary WHERE sweep = 'kernel-density' AND backend = 'dense')
SELECT k.seq_len AS T, k.pass, printf('%.1f', k.median_ms) AS kernel_ms, printf('%.1f', d.median_ms) AS sdpa_ms,
  printf('%.2fx', d.median_ms / k.median_ms) AS speedup, printf('%.1f', k.peak_mib) AS kernel_mib,
  printf('%.1f', d.peak_mib) AS sdpa_mib, printf('%.2f', k.peak_mib / d.peak_mib) AS kernel_over_sdpa_mib
FROM k JOIN d ON d.seq_len = k.seq_len AND d.pass = k.pass ORDER BY k.pass, k.seq_len;
