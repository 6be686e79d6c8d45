-- Issue 18's verdict on the recall study (experiments/study.toml, its criteria in the file's
-- header), from the distill_methods view (seeds aggregated) at T = 2048. One row per learned or
-- searched student; "learned beats fixed" holds only where a learned row meets c1..c3 at <= 0.25
-- of the causal tiles, and c4 says whether learning matched the search.
--   c1  recall >= 0.90 in every seed, while every uniform fixed mask at <= its density recalls
--       <= chance + 0.10 in every seed, and the fixed masks' highest 95% upper bound is below
--       this row's lowest 95% lower bound (intervals do not overlap)
--   c2  bits/byte (plain windows) <= 1.01 x the best fixed mask's at <= its density
--   c3  end-to-end speedup over the dense teacher >= 1.3 (the mean of the seeds; slowest seed shown)
--   c4  recall within or above the interval of the per-head search on causal,window:64
-- Roles: fixed = masks; search / random = blend's search and its random control; oracle = topk's
-- dense-mass gate (not deployable); content = topk's parameter-free mean gate; learned = the rest.
WITH m AS (
  SELECT replace(replace(first_trial, '/seed:0/', '/'), '/seed:0', '') AS student, backend, method, seeds, causal_fraction AS frac,
    causal_fraction_max AS frac_max, student_bpb AS bpb, speedup, speedup_min, recall_acc AS recall,
    recall_acc_min, recall_acc_max, recall_acc_lo_min AS lo, recall_acc_hi_max AS hi, recall_chance AS chance,
    CASE WHEN backend = 'masks' THEN 'fixed' WHEN backend = 'dense' THEN 'control'
         WHEN method LIKE '%backend.selection=search;%' THEN 'search'
         WHEN method LIKE '%backend.selection=random;%' OR method LIKE '%backend.gate=random;%' THEN 'random'
         WHEN method LIKE '%backend.gate=oracle;%' THEN 'oracle'
         WHEN method LIKE '%backend.gate=mean;%' THEN 'content'
         ELSE 'learned' END AS role
  FROM distill_methods WHERE sweep = 'recall-study' AND eval_len = 2048),
fixed AS (SELECT * FROM m WHERE role = 'fixed'),
search AS (SELECT * FROM m WHERE role = 'search' AND method LIKE '%backend.candidates=causal,window:64;%'),
rows AS (
  SELECT m.*,
    (SELECT MAX(f.recall_acc_max - f.chance) FROM fixed f WHERE f.frac <= m.frac) AS fixed_over_chance,
    (SELECT MAX(f.hi) FROM fixed f WHERE f.frac <= m.frac) AS fixed_hi,
    (SELECT MIN(f.bpb) FROM fixed f WHERE f.frac <= m.frac) AS fixed_bpb,
    (SELECT s.lo FROM search s) AS search_lo, (SELECT s.recall FROM search s) AS search_recall
  FROM m WHERE role IN ('learned', 'search', 'content', 'oracle'))
SELECT student, role, seeds, printf('%.3f', frac) AS of_causal,
  printf('%.3f [%.3f, %.3f]', recall, lo, hi) AS recall_seeds_ci,
  printf('%.3f', fixed_over_chance) AS fixed_minus_chance,
  CASE WHEN frac_max > 0.25 THEN 'missed (density)'
       WHEN recall_acc_min >= 0.90 AND fixed_over_chance <= 0.10 AND fixed_hi < lo THEN 'met' ELSE 'missed' END AS c1,
  printf('%.3f / %.3f', bpb, fixed_bpb) AS bpb_vs_best_fixed,
  CASE WHEN frac_max > 0.25 THEN 'missed (density)' WHEN bpb <= 1.01 * fixed_bpb THEN 'met' ELSE 'missed' END AS c2,
  printf('%.2fx (min %.2fx)', speedup, speedup_min) AS speedup,
  CASE WHEN frac_max > 0.25 THEN 'missed (density)' WHEN speedup >= 1.3 THEN 'met' ELSE 'missed' END AS c3,
  CASE WHEN role != 'learned' THEN '' WHEN recall >= search_lo THEN 'met' ELSE 'missed' END AS c4
FROM rows ORDER BY role, frac;
