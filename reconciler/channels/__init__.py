"""Notification channels, one module each (`telegram`, `gitea_issue`, `log_line`), every
one behind the same small interface (`interface.ChannelModule`: `deliver`). A channel's
answers enter here and nowhere else. A new channel is a module here, a model in
`state.spec.notifications`, and a row in `send.MODULES`."""
