"""rosbag2 (mcap/sqlite3) tools without a ROS install, on the ``rosbags`` library: make, play, record.

``spvla-bag make-bag`` writes camera frames (and a dataset's recorded actions and instructions) at their
true rate; ``spvla-bag play`` publishes a bag into a live graph, in real time or step by step
(deterministic, with ``/clock``); ``spvla-bag record`` writes topics of a live graph to a bag.
"""
