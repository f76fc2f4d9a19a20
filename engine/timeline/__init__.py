"""One timeline per file: transcript, speakers and sound tags together (``analyze``), SDH captions
(``captions``), the sidecar project file that reopens them (``project``) and the user's edits (``edits``)."""
