# Reads a TensorBoard log folder with TensorBoard's own EventAccumulator (every point kept, orphaned
# data purged as TensorBoard does) and prints {tag: [[step, value], ...]} as JSON on stdout.
import json
import sys

from tensorboard.backend.event_processing import event_accumulator

acc = event_accumulator.EventAccumulator(sys.argv[1], size_guidance={event_accumulator.SCALARS: 0}, purge_orphaned_data=True)
acc.Reload()
out = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
json.dump(out, sys.stdout)
