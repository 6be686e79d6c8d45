-- Target 3: forward GFLOP/s vs the sgemm ceiling measured in the same run. useful = the elements
-- the mask allows (4·D FLOPs each), the figure the target counts; tile = every element of the
-- computed tiles (the masked half of a diagonal tile included); fraction = useful / sgemm.
SELECT t.seq_len AS T, p.value AS pattern, printf('%.1f', u.value) AS useful_gflops,
  printf('%.1f', m.value) AS tile_gflops, printf('%.1f', c.value) AS sgemm_gflops,
  printf('%.2f', f.value) AS fraction
FROM trial_summary t
JOIN params p ON p.trial_id = t.trial_id AND p.name = 'backend.pattern'
JOIN metrics u ON u.trial_id = t.trial_id AND u.name = 'flops/gflops'
JOIN metrics m ON m.trial_id = t.trial_id AND m.name = 'flops/tile_gflops'
JOIN metrics c ON c.trial_id = t.trial_id AND c.name = 'ceiling/sgemm_gflops'
JOIN metrics f ON f.trial_id = t.trial_id AND f.name = 'flops/fraction_of_sgemm'
WHERE t.sweep = 'kernel-density' AND t.backend = 'masks' AND t.pass = 'fwd' ORDER BY t.seq_len, t.block_density;
