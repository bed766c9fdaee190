/**
 * wpmsync progress bar: polls WordPress's own job-status proxy (admin-ajax.php) about once a
 * second and updates <progress id="wpmsync-progress"> and #wpmsync-job-state. The proxy holds
 * the function key; this script never sees it. Text is set with textContent only.
 */
( function () {
	'use strict';

	var box = document.getElementById( 'wpmsync-job' );
	if ( ! box || ! window.fetch ) {
		return;
	}
	var bar = document.getElementById( 'wpmsync-progress' );
	var text = document.getElementById( 'wpmsync-job-state' );
	var i18n = window.wpmsyncProgress || {};
	var failures = 0;
	var url = box.getAttribute( 'data-ajax-url' ) +
		'?action=' + encodeURIComponent( box.getAttribute( 'data-action' ) ) +
		'&job_id=' + encodeURIComponent( box.getAttribute( 'data-job-id' ) ) +
		'&_wpnonce=' + encodeURIComponent( box.getAttribute( 'data-nonce' ) );

	function show( status ) {
		if ( status.total > 0 ) {
			bar.max = status.total;
		}
		bar.value = Math.min( status.done + status.failed, bar.max );
		text.textContent = status.label;
	}

	function trouble( message ) {
		failures += 1;
		text.textContent = ( i18n.unavailable || 'Job status unavailable: %s' ).replace( '%s', message );
		if ( failures >= 10 ) {
			text.textContent += ' ' + ( i18n.gaveUp || '' );
			return false;
		}
		return true;
	}

	function poll() {
		window.fetch( url, { credentials: 'same-origin', headers: { Accept: 'application/json' } } )
			.then( function ( response ) {
				return response.json().catch( function () {
					return { success: false, data: { message: 'HTTP ' + response.status } };
				} );
			} )
			.then( function ( answer ) {
				if ( answer && answer.success && answer.data ) {
					failures = 0;
					show( answer.data );
					if ( ! answer.data.finished ) {
						window.setTimeout( poll, 1000 );
					}
				} else if ( trouble( answer && answer.data && answer.data.message ? answer.data.message : '?' ) ) {
					window.setTimeout( poll, 2000 );
				}
			} )
			.catch( function ( error ) {
				if ( trouble( String( error && error.message ? error.message : error ) ) ) {
					window.setTimeout( poll, 2000 );
				}
			} );
	}

	poll();
}() );
