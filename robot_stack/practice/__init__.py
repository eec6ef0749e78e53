"""robot_stack.practice: reset-free autonomous practice (RoboFuME), plain Python (the ROS node is an adapter).

    session.PracticeSession  the forward/backward loop over a PracticeRig (pause/resume/stop, resets, status JSON)
    counts.PracticeCounts    tallies rebuilt from the store's practice episodes (restart-safe)
    judge                    who labels an attempt: the success classifier, or the sim's truth (oracle controls)
    sim_rig.SimPracticeRig   the in-process MuJoCo rig (tests, benchmarks)
    classifier/              the success classifier (reward model): CNN and Hugging Face image-text backends
"""
