import statistics
from reporter.demo_train import train
for seed in range(3):
    r = train(200, eval_every=None, batch=32, seed=seed, say=lambda s: None)
    print(seed, round(statistics.mean(r.losses[:10]),3), round(statistics.mean(r.losses[-20:]),3))
r = train(800, eval_every=200, seed=0, say=lambda s: None)
print([round(statistics.mean(r.losses[i:i+50]),3) for i in range(0,800,50)], r.evals)
