-- Every (user, eval_set) candidate list holds exactly one positive (the test target).

select run_date, user_id, eval_set, sum(label) as n_positives
from {{ ref('eval_candidates') }}
group by run_date, user_id, eval_set
having sum(label) <> 1
